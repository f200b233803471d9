//! Emulation: running a platform's programs on a CPU of another architecture. The probe
//! programs ([`probe`]), what this machine's kernel runs ([`kernel`]), and the decision to
//! register QEMU on an Engine ([`register_emulators`]); the Engine calls themselves (a probe
//! container, the installer container) stay in [`crate::engine`], the only user of bollard.

pub mod kernel;
pub mod probe;
mod qemu;

pub use qemu::{probe_container, register_emulators};
