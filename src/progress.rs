//! Where the outside-system rooms (`engine`, `emulation`, `registry`, `gate`) tell what they
//! are doing while they do it: lines under a named group (a platform, or a phase), plain
//! lines, notices and warnings. They write to a [`Progress`] and never to the console itself,
//! so that they know nothing of workflow commands; [`crate::github::Console`] is the sink of a
//! run, and a test may pass a capturing one.

/// A sink for progress lines; shared by concurrent platform builds, so `Send + Sync`.
pub trait Progress: Send + Sync {
    /// A line under a named group (a platform, or a phase such as `qemu`).
    fn group_line(&self, group: &str, line: &str);
    /// Closes whatever group is open.
    fn end_group(&self);
    /// A line outside any group.
    fn info(&self, message: &str);
    /// Something the user should know, though nothing failed.
    fn notice(&self, message: &str);
    /// Something went wrong that the run survives.
    fn warning(&self, message: &str);
}
