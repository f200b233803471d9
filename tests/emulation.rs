//! A runner with no QEMU registered still builds arm64: the action registers the emulator
//! itself, as docker/setup-qemu-action would. Its own test binary, because it unregisters the
//! host's arm64 emulator for a moment: cargo runs test binaries one after another, so no other
//! build is running then.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::Command;

const ENTRY: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

/// Puts the host's registration back however the test ends.
struct RestoreEmulator;

impl Drop for RestoreEmulator {
    fn drop(&mut self) {
        if !Path::new(ENTRY).exists() {
            let _ = Command::new("update-binfmts")
                .args(["--enable", "qemu-aarch64"])
                .status();
        }
    }
}

#[test]
fn an_arm64_build_registers_qemu_when_the_runner_has_none() {
    let registry = std::env::var("TESTBED_REGISTRY").expect(
        "`TESTBED_REGISTRY` is not set: run `scripts/test`, or `eval \"$(scripts/testbed env)\"`",
    );
    assert!(
        std::env::var("ECR_MULTIARCH_BINFMT_IMAGE").is_ok(),
        "the testbed's QEMU installer image must be named in the environment"
    );
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM testbase/busybox:arm64\nRUN uname -m > /arch\n",
    )
    .unwrap();

    let _restore = RestoreEmulator;
    std::fs::write(ENTRY, "-1").expect("unregistering qemu-aarch64 (needs root)");
    assert!(!Path::new(ENTRY).exists());

    let repository = format!("it/emulation-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_ecr-multiarch"))
        .args(["--repository", &repository, "--platforms", "linux/arm64"])
        .args(["--registry", &registry, "--network", "none"])
        .arg("--context")
        .arg(context.path())
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("[qemu] registering QEMU emulators for arm64"),
        "{stderr}"
    );
    assert!(stderr.contains("installing: arm64 OK"), "{stderr}");
    assert!(
        std::fs::read_to_string(ENTRY)
            .unwrap()
            .starts_with("enabled"),
        "the emulator is registered again"
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(metadata["metadata"]["timings-ms"]["emulation"].is_u64());
}
