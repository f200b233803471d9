//! The Linux kernel this process runs on: its release, and whether it runs a platform's
//! programs (natively, or through an emulator registered in `binfmt_misc`). Registered
//! emulators are the kernel's, not a container's: when the Docker Engine runs on this same
//! kernel (the action's container on a runner, with the host's socket mounted), a probe program
//! that runs here runs in the Engine's build containers too, and the check costs a few
//! milliseconds instead of a container.
//!
//! One catch: an emulator registered without the `F` flag is looked up by path when a program
//! starts, in the starting process's file system, so it can work here and not in a container
//! (or the other way round). Where `binfmt_misc` is visible, a registration without `F` makes
//! the answer [`Runs::Unknown`]; where it is not (inside the action's container), a program
//! that ran found its emulator without a path, which is what `F` means.

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::emulation::probe;
use crate::platform::Platform;

const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";
/// How long a probe may take (QEMU starts in milliseconds).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// `ENOEXEC`: no handler for the program's format.
const ENOEXEC: i32 = 8;

/// The kernel's release (`uname -r`), e.g. `6.8.0-1017-azure`; `None` off Linux.
#[must_use]
pub fn release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|r| r.trim().to_owned())
}

/// Whether this kernel runs programs of a platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// The probe ran and exited 0.
    Yes,
    /// The kernel has no handler for the format (`ENOEXEC`).
    No,
    /// The probe could not tell (no probe for the architecture, a file system that forbids
    /// executing, an emulator registered without `F`...).
    Unknown,
}

/// Runs the probe program of `platform`'s architecture (written to a temporary file under
/// `temp_root`) and tells what happened.
pub async fn runs(platform: &Platform, temp_root: &Path) -> Runs {
    let Some(program) = probe::program(&platform.architecture, 0) else {
        return Runs::Unknown;
    };
    let Ok(path) = write_executable(&program, temp_root) else {
        return Runs::Unknown;
    };
    let status = tokio::time::timeout(
        PROBE_TIMEOUT,
        tokio::process::Command::new(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status(),
    )
    .await;
    match status {
        Ok(Ok(status)) if status.success() => {
            if registered_without_fix_binary(&program) {
                Runs::Unknown
            } else {
                Runs::Yes
            }
        }
        Ok(Err(error)) if error.raw_os_error() == Some(ENOEXEC) => Runs::No,
        _ => Runs::Unknown,
    }
}

/// The program in a closed temporary file that may be executed (a file still open for writing
/// cannot be: `ETXTBSY`). Deleted when the returned path is dropped.
fn write_executable(program: &[u8], temp_root: &Path) -> io::Result<tempfile::TempPath> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let mut file = tempfile::Builder::new()
        .prefix("ecr-multiarch-probe-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempfile_in(temp_root)?;
    file.write_all(program)?;
    file.as_file().sync_all()?;
    Ok(file.into_temp_path())
}

/// Whether `binfmt_misc` is visible here and the enabled registration that handles `program`
/// lacks the `F` (fix binary) flag.
fn registered_without_fix_binary(program: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(BINFMT_MISC) else {
        return false;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == "register" || name == "status" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some(handles) =
            Registration::parse(&text).map(|r| (r.matches(program), r.fix_binary))
        {
            if handles.0 {
                return !handles.1;
            }
        }
    }
    false
}

/// An enabled magic-number registration of `binfmt_misc`, as its file reads.
#[derive(Debug, PartialEq, Eq)]
struct Registration {
    offset: usize,
    magic: Vec<u8>,
    mask: Option<Vec<u8>>,
    fix_binary: bool,
}

impl Registration {
    /// `enabled`, `interpreter ...`, `flags: PF`, `offset 0`, `magic 7f454c46...`,
    /// `mask ffffff...`; `None` for a disabled or extension registration.
    fn parse(text: &str) -> Option<Registration> {
        let mut lines = text.lines();
        if lines.next()?.trim() != "enabled" {
            return None;
        }
        let mut registration = Registration {
            offset: 0,
            magic: Vec::new(),
            mask: None,
            fix_binary: false,
        };
        for line in lines {
            let (key, value) = line.split_once([' ', ':']).unwrap_or((line, ""));
            let value = value.trim_start_matches(':').trim();
            match key {
                "flags" => registration.fix_binary = value.contains('F'),
                "offset" => registration.offset = value.parse().ok()?,
                "magic" => registration.magic = hex(value)?,
                "mask" => registration.mask = Some(hex(value)?),
                _ => {}
            }
        }
        (!registration.magic.is_empty()).then_some(registration)
    }

    /// The kernel's test: the bytes at `offset`, masked, equal the magic.
    fn matches(&self, program: &[u8]) -> bool {
        let Some(bytes) = program.get(self.offset..self.offset + self.magic.len()) else {
            return false;
        };
        bytes.iter().enumerate().all(|(i, byte)| {
            let mask = self
                .mask
                .as_ref()
                .and_then(|m| m.get(i))
                .copied()
                .unwrap_or(0xff);
            byte & mask == self.magic[i] & mask
        })
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's qemu-user-static registers for aarch64, as `binfmt_misc` shows it.
    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn a_registration_matches_its_architecture_only() {
        let registration = Registration::parse(AARCH64).expect("enabled");
        assert!(registration.fix_binary);
        let arm64 = probe::program("arm64", 0).expect("arm64");
        let riscv = probe::program("riscv64", 0).expect("riscv64");
        assert!(registration.matches(&arm64));
        assert!(!registration.matches(&riscv));
        let without_f = AARCH64.replace("flags: POCF", "flags: P");
        assert!(!Registration::parse(&without_f).expect("enabled").fix_binary);
        assert!(Registration::parse(&AARCH64.replace("enabled", "disabled")).is_none());
    }

    #[tokio::test]
    async fn the_native_platform_runs_here() {
        let native = match std::env::consts::ARCH {
            "x86_64" => "linux/amd64",
            "aarch64" => "linux/arm64",
            _ => return,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            runs(&native.parse().expect("platform"), dir.path()).await,
            Runs::Yes
        );
        // Nothing is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
