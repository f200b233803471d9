//! QEMU only when needed (issue 11): an Engine that already runs a platform gets no installer,
//! the check tells registered platforms from missing ones by this kernel and by a probe
//! container alike, and every probe program exits as told under QEMU.

use std::collections::BTreeMap;
use std::process::Command;

use super::{fixture, testbed, unique_repository, Run};

#[test]
fn an_engine_that_already_runs_arm64_gets_no_qemu_installer() {
    let repository = unique_repository("qemu-probe");
    let context = fixture(&[(
        "Dockerfile",
        "FROM testbase/busybox:arm64\nRUN uname -m > /arch\n",
    )]);
    // An installer that cannot be found: had it run, the run would warn.
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/arm64")
        .env("ECR_MULTIARCH_BINFMT_IMAGE", "testbase/no-such-installer:1")
        .run();
    result.assert_success();
    // The Engine runs on this machine's kernel: asking the kernel is enough.
    assert!(
        result.stdout.contains(
            "[qemu] the Engine already runs linux/arm64 (checked by this machine's kernel in "
        ),
        "{}",
        result.stdout
    );
    assert!(
        !result.stdout.contains("registering QEMU"),
        "{}",
        result.stdout
    );
    assert!(!result.stdout.contains("::warning::"), "{}", result.stdout);
    let metadata = result.metadata();
    let probe_ms = metadata["timings-ms"]["emulation"].as_u64().unwrap();
    eprintln!("the arm64 probe took {probe_ms} ms");
}

#[tokio::test]
async fn the_qemu_check_tells_registered_platforms_from_missing_ones() {
    use ecr_multiarch::emulation::kernel::{self, Runs};
    // The testbed registers QEMU for arm64 only; the machine is amd64.
    let engine = ecr_multiarch::engine::Engine::connect(
        &testbed().engine.host,
        None,
        &[],
        ecr_multiarch::engine::NamedBy::DockerHost,
    )
    .await
    .unwrap();
    let temp = tempfile::tempdir().unwrap();
    for (platform, runs) in [
        ("linux/amd64", true),
        ("linux/arm64", true),
        ("linux/riscv64", false),
    ] {
        let parsed = platform.parse().unwrap();
        let started = std::time::Instant::now();
        let by_container = ecr_multiarch::emulation::probe_container(&engine, &parsed)
            .await
            .unwrap();
        let container_ms = started.elapsed().as_millis();
        let started = std::time::Instant::now();
        let by_kernel = kernel::runs(&parsed, temp.path()).await;
        eprintln!(
            "{platform}: probe container {by_container:?} in {container_ms} ms, this kernel {by_kernel:?} in {} ms",
            started.elapsed().as_millis()
        );
        assert_eq!(by_container, Some(runs), "{platform} by a probe container");
        assert_eq!(
            by_kernel,
            if runs { Runs::Yes } else { Runs::No },
            "{platform} by this kernel"
        );
    }
    assert!(engine.shares_kernel(&kernel::release().unwrap()));
}

#[test]
fn every_probe_exits_with_its_status_under_qemu() {
    // Go's Linux architectures and the QEMU user-mode emulator of each (qemu-user-static).
    let emulators = BTreeMap::from([
        ("386", "i386"),
        ("amd64", "x86_64"),
        ("arm", "arm"),
        ("arm64", "aarch64"),
        ("loong64", "loongarch64"),
        ("mips", "mips"),
        ("mipsle", "mipsel"),
        ("mips64", "mips64"),
        ("mips64le", "mips64el"),
        ("ppc64", "ppc64"),
        ("ppc64le", "ppc64le"),
        ("riscv64", "riscv64"),
        ("s390x", "s390x"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    for (arch, emulator) in emulators {
        for status in [0u8, 3] {
            let program = ecr_multiarch::emulation::probe::program(arch, status).unwrap();
            let path = dir.path().join(format!("{arch}-{status}"));
            std::fs::write(&path, program).unwrap();
            // QEMU, like the kernel, runs only what may be executed.
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            let out = Command::new(format!("qemu-{emulator}-static"))
                .arg(&path)
                .output()
                .unwrap_or_else(|e| panic!("qemu-{emulator}-static: {e}"));
            assert_eq!(
                out.status.code(),
                Some(i32::from(status)),
                "{arch}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
