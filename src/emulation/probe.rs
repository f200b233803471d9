//! Tiny Linux programs that do nothing but exit, one per CPU architecture the Engine builds
//! for, and a `docker save` archive holding one as an image of a platform. A container of that
//! image tells whether the Docker Engine can run the platform (natively, or through a QEMU
//! emulator registered in the host's `binfmt_misc`) from where the action runs: inside a
//! container, where the host's `/proc/sys/fs/binfmt_misc` is not mounted, and without pulling
//! anything. BuildKit decides the same way which platforms its worker runs (its own probes in
//! `util/archutil`); these are written here from the architectures' manuals.
//!
//! Pure: builds bytes, knows no server.

use std::io;

use sha2::{Digest as _, Sha256};

use crate::platform::Platform;

/// Where every probe is loaded in memory: page-aligned and above any `mmap_min_addr`.
const LOAD_ADDRESS: u32 = 0x0040_0000;

/// The probe's path inside its image.
pub const PROBE_PATH: &str = "/probe";

/// How an architecture's programs are laid out.
struct ElfLayout {
    /// 64-bit ELF (`ELFCLASS64`) or 32-bit.
    wide: bool,
    /// Little-endian (`ELFDATA2LSB`) or big-endian.
    little_endian: bool,
    /// `e_machine`.
    machine: u16,
    /// `e_flags`: the ABI where the kernel (and QEMU) reads it from there.
    flags: u32,
}

/// The machine and the code of `exit(status)` for a Go `GOARCH`, or `None` for another name.
/// Each program loads the status and the `exit` system call number into the registers of the
/// architecture's Linux system call convention and traps; a wrong number would run on into
/// the end of the segment and crash, so exiting with `status` shows the whole program ran.
#[allow(clippy::too_many_lines)]
fn exit_program(architecture: &str, status: u8) -> Option<(ElfLayout, Vec<u8>)> {
    let s = u32::from(status);
    let words = |little: bool, words: &[u32]| -> Vec<u8> {
        words
            .iter()
            .flat_map(|w| {
                if little {
                    w.to_le_bytes()
                } else {
                    w.to_be_bytes()
                }
            })
            .collect()
    };
    let machine = |wide, little_endian, machine, flags| ElfLayout {
        wide,
        little_endian,
        machine,
        flags,
    };
    Some(match architecture {
        // mov edi, status; mov eax, 60 (exit); syscall
        "amd64" => {
            let mut code = vec![0xbf];
            code.extend_from_slice(&s.to_le_bytes());
            code.extend_from_slice(&[0xb8, 60, 0, 0, 0, 0x0f, 0x05]);
            (machine(true, true, 62, 0), code)
        }
        // mov ebx, status; mov eax, 1 (exit); int 0x80
        "386" => {
            let mut code = vec![0xbb];
            code.extend_from_slice(&s.to_le_bytes());
            code.extend_from_slice(&[0xb8, 1, 0, 0, 0, 0xcd, 0x80]);
            (machine(false, true, 3, 0), code)
        }
        // movz x0, #status; movz x8, #93 (exit); svc #0
        "arm64" => (
            machine(true, true, 183, 0),
            words(true, &[0xd280_0000 | (s << 5), 0xd280_0ba8, 0xd400_0001]),
        ),
        // mov r0, #status; mov r7, #1 (exit); svc #0 — ARM state, EABI version 5
        "arm" => (
            machine(false, true, 40, 0x0500_0000),
            words(true, &[0xe3a0_0000 | s, 0xe3a0_7001, 0xef00_0000]),
        ),
        // addi a0, zero, status; addi a7, zero, 93 (exit); ecall
        "riscv64" => (
            machine(true, true, 243, 0),
            words(true, &[0x0000_0513 | (s << 20), 0x05d0_0893, 0x0000_0073]),
        ),
        // li r0, 1 (exit); li r3, status; sc — ELFv2 (`e_flags` 2): the entry is the code
        // itself, not a function descriptor, in either byte order
        "ppc64le" | "ppc64" => {
            let little = architecture == "ppc64le";
            (
                machine(true, little, 21, 2),
                words(little, &[0x3800_0001, 0x3860_0000 | s, 0x4400_0002]),
            )
        }
        // lghi r2, status; svc 1 (exit)
        "s390x" => {
            let mut code = vec![0xa7, 0x29, 0, status];
            code.extend_from_slice(&[0x0a, 0x01]);
            (machine(true, false, 22, 0), code)
        }
        // o32: addiu v0, zero, 4001 (exit); addiu a0, zero, status; syscall — MIPS32r2
        "mips" | "mipsle" => {
            let little = architecture == "mipsle";
            (
                machine(false, little, 8, 0x7000_1007),
                words(little, &[0x2402_0fa1, 0x2404_0000 | s, 0x0000_000c]),
            )
        }
        // n64: daddiu v0, zero, 5058 (exit); daddiu a0, zero, status; syscall — MIPS64r2
        "mips64" | "mips64le" => {
            let little = architecture == "mips64le";
            (
                machine(true, little, 8, 0x8000_0007),
                words(little, &[0x6402_13c2, 0x6404_0000 | s, 0x0000_000c]),
            )
        }
        // addi.w a0, zero, status; addi.w a7, zero, 93 (exit); syscall 0 — LP64D
        "loong64" => (
            machine(true, true, 258, 0x43),
            words(true, &[0x0280_0004 | (s << 10), 0x0281_740b, 0x002b_0000]),
        ),
        _ => return None,
    })
}

/// A static ELF executable of one loadable segment (headers and code, read and execute)
/// whose entry is the code right after the headers.
fn elf(machine: &ElfLayout, code: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(160);
    let little = machine.little_endian;
    let u16b = |v: u16| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let u32b = |v: u32| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let u64b = |v: u64| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let (header_size, segment_header_size): (u16, u16) =
        if machine.wide { (64, 56) } else { (52, 32) };
    let headers = u32::from(header_size) + u32::from(segment_header_size);
    let total = headers + u32::try_from(code.len()).unwrap_or(u32::MAX);
    let entry = LOAD_ADDRESS + headers;
    // e_ident: magic, class, data, version, System V ABI, padding.
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F']);
    out.push(if machine.wide { 2 } else { 1 });
    out.push(if little { 1 } else { 2 });
    out.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&u16b(2)); // e_type: ET_EXEC
    out.extend_from_slice(&u16b(machine.machine));
    out.extend_from_slice(&u32b(1)); // e_version
    if machine.wide {
        out.extend_from_slice(&u64b(u64::from(entry)));
        out.extend_from_slice(&u64b(u64::from(header_size))); // e_phoff
        out.extend_from_slice(&u64b(0)); // e_shoff
    } else {
        out.extend_from_slice(&u32b(entry));
        out.extend_from_slice(&u32b(u32::from(header_size)));
        out.extend_from_slice(&u32b(0));
    }
    out.extend_from_slice(&u32b(machine.flags));
    out.extend_from_slice(&u16b(header_size)); // e_ehsize
    out.extend_from_slice(&u16b(segment_header_size)); // e_phentsize
    out.extend_from_slice(&u16b(1)); // e_phnum
    out.extend_from_slice(&u16b(0)); // e_shentsize
    out.extend_from_slice(&u16b(0)); // e_shnum
    out.extend_from_slice(&u16b(0)); // e_shstrndx
                                     // The one PT_LOAD segment: the whole file at LOAD_ADDRESS, readable and executable.
    if machine.wide {
        out.extend_from_slice(&u32b(1)); // p_type
        out.extend_from_slice(&u32b(5)); // p_flags: R + X
        out.extend_from_slice(&u64b(0)); // p_offset
        out.extend_from_slice(&u64b(u64::from(LOAD_ADDRESS))); // p_vaddr
        out.extend_from_slice(&u64b(u64::from(LOAD_ADDRESS))); // p_paddr
        out.extend_from_slice(&u64b(u64::from(total))); // p_filesz
        out.extend_from_slice(&u64b(u64::from(total))); // p_memsz
        out.extend_from_slice(&u64b(0x1000)); // p_align
    } else {
        out.extend_from_slice(&u32b(1));
        out.extend_from_slice(&u32b(0));
        out.extend_from_slice(&u32b(LOAD_ADDRESS));
        out.extend_from_slice(&u32b(LOAD_ADDRESS));
        out.extend_from_slice(&u32b(total));
        out.extend_from_slice(&u32b(total));
        out.extend_from_slice(&u32b(5));
        out.extend_from_slice(&u32b(0x1000));
    }
    out.extend_from_slice(code);
    out
}

/// The program for a Go `GOARCH` that exits with `status`; `None` for an architecture this
/// module has no program for.
#[must_use]
pub fn program(architecture: &str, status: u8) -> Option<Vec<u8>> {
    exit_program(architecture, status).map(|(machine, code)| elf(&machine, &code))
}

/// A `docker save` archive (`manifest.json`, the config, one layer) of an untagged image for
/// `platform` whose entrypoint is the probe exiting 0; `None` when there is no probe for its
/// architecture. The same platform always gives the same bytes, so loading it again changes
/// nothing in the Engine.
pub fn image_archive(platform: &Platform) -> Option<io::Result<Vec<u8>>> {
    let probe = program(&platform.architecture, 0)?;
    Some(archive(platform, &probe))
}

fn archive(platform: &Platform, probe: &[u8]) -> io::Result<Vec<u8>> {
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(probe.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    layer.append_data(&mut header, PROBE_PATH.trim_start_matches('/'), probe)?;
    let layer = layer.into_inner()?;
    let diff_id = format!("sha256:{:x}", Sha256::digest(&layer));
    let mut config = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": { "Entrypoint": [PROBE_PATH] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    if let Some(variant) = &platform.variant {
        config["variant"] = serde_json::json!(variant);
    }
    let config = serde_json::to_vec(&config).map_err(io::Error::other)?;
    let config_name = format!("{:x}.json", Sha256::digest(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": null,
        "Layers": ["layer.tar"],
    }]))
    .map_err(io::Error::other)?;
    let mut out = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("layer.tar", layer.as_slice()),
        (config_name.as_str(), config.as_slice()),
        ("manifest.json", manifest.as_slice()),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        out.append_data(&mut header, name, data)?;
    }
    out.into_inner()
}

/// The image id a classic-store Engine gives the probe image of `platform` (the digest of its
/// config), for when the load's answer does not name it.
#[must_use]
pub fn classic_image_id(archive: &[u8]) -> Option<String> {
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().ok()? {
        let entry = entry.ok()?;
        let name = entry.path().ok()?.to_string_lossy().into_owned();
        if let Some(hex) = name
            .strip_suffix(".json")
            .filter(|_| name != "manifest.json")
        {
            return Some(format!("sha256:{hex}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `GOARCH` the `platforms` input accepts (Go's Linux ports).
    const ARCHITECTURES: &[&str] = &[
        "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
        "ppc64le", "riscv64", "s390x",
    ];

    #[test]
    fn every_architecture_the_inputs_accept_has_a_probe() {
        for arch in ARCHITECTURES {
            let program = program(arch, 0).unwrap_or_else(|| panic!("no probe for {arch}"));
            assert_eq!(&program[..4], b"\x7fELF", "{arch}");
            assert!(program.len() < 200, "{arch}: {} bytes", program.len());
        }
        assert!(program("sparc64", 0).is_none());
    }

    #[test]
    fn the_header_says_class_byte_order_and_machine() {
        let arm64 = program("arm64", 0).expect("arm64");
        assert_eq!((arm64[4], arm64[5]), (2, 1), "64-bit little-endian");
        assert_eq!(u16::from_le_bytes([arm64[18], arm64[19]]), 183);
        let s390x = program("s390x", 0).expect("s390x");
        assert_eq!((s390x[4], s390x[5]), (2, 2), "64-bit big-endian");
        assert_eq!(u16::from_be_bytes([s390x[18], s390x[19]]), 22);
        let arm = program("arm", 0).expect("arm");
        assert_eq!((arm[4], arm[5]), (1, 1), "32-bit little-endian");
        // The entry is right after the two headers.
        let entry = u32::from_le_bytes([arm[24], arm[25], arm[26], arm[27]]);
        assert_eq!(entry, LOAD_ADDRESS + 52 + 32);
    }

    #[test]
    fn the_status_is_in_the_code() {
        for arch in ARCHITECTURES {
            assert_ne!(program(arch, 0), program(arch, 3), "{arch}");
        }
    }

    #[test]
    fn the_archive_is_one_untagged_image_of_the_platform() {
        let platform: Platform = "linux/arm/v6".parse().expect("platform");
        let archive = image_archive(&platform).expect("arm").expect("archive");
        assert_eq!(
            image_archive(&platform).expect("arm").expect("archive"),
            archive,
            "the same bytes every time"
        );
        let mut tar = tar::Archive::new(archive.as_slice());
        let mut names = Vec::new();
        let mut config = serde_json::Value::Null;
        for entry in tar.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").to_string_lossy().into_owned();
            if name.strip_suffix(".json").is_some() && name != "manifest.json" {
                config = serde_json::from_reader(&mut entry).expect("config");
            }
            names.push(name);
        }
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(config["architecture"], "arm");
        assert_eq!(config["variant"], "v6");
        assert_eq!(config["config"]["Entrypoint"][0], PROBE_PATH);
        let id = classic_image_id(&archive).expect("id");
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    }
}
