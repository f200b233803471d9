//! Issue 14, the engine side of the fidelity test: an image whose layers hold what file
//! systems hold (hard links made by `RUN`; symbolic links absolute, relative, dangling and with
//! a 200+ character target; whiteouts and a folder made again; empty folders; a FIFO and a
//! character device; setuid, setgid, sticky and mode 0000; owners 65534, 1000000 and
//! 4294967294; names with spaces, unicode, bytes that are not UTF-8 and 200+ characters; a 20 MB
//! incompressible file; repeated identical layers) and every config field. On the engine under
//! test, the image read back from the registry equals the Engine's own image (`docker save` of
//! the build's image, kept with `ECR_MULTIARCH_KEEP_IMAGES`) entry by entry and field by field.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::{command, fixture, http_client, testbed, unique_repository, Run};

const DOCKERFILE: &str = r#"ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
COPY hosts resolv.conf /etc/
ARG RUN_ID
COPY ctx.txt /f/ctx.txt
RUN mkdir -p /f/dir /f/empty/nested /f/opaque /f/stickydir \
 && echo "$RUN_ID" > /f/file && ln /f/file /f/hardlink && ln /f/file "/f/dir/hard link 2" \
 && echo old > /f/opaque/old && echo gone > /f/gone
RUN ln -s /f/file /f/abs && ln -s ../file /f/dir/rel && ln -s /nowhere/at/all /f/dangling \
 && ln -s "/$(printf '%0220d' 0 | tr 0 t)" /f/longlink \
 && mkfifo /f/fifo && mknod /f/chardev c 1 3 \
 && touch /f/setuid /f/setgid /f/zero && chmod 4755 /f/setuid && chmod 2755 /f/setgid \
 && chmod 1777 /f/stickydir && chmod 0000 /f/zero \
 && touch /f/nobody /f/million /f/max && chown 65534:65534 /f/nobody \
 && chown 1000000:1000000 /f/million && chown 4294967294:4294967294 /f/max \
 && touch "/f/with space" "/f/ünïcödé-名前" "/f/$(printf 'bad\377byte')" "/f/$(printf '%0210d' 0 | tr 0 n)" \
 && head -c 20000000 /dev/urandom > /f/random
RUN rm /f/gone && rm -rf /f/opaque && mkdir /f/opaque && echo new > /f/opaque/new
RUN true
RUN true
ENV A=1 B="two words"
WORKDIR /f/dir
EXPOSE 8080/tcp 53/udp
VOLUME ["/data"]
LABEL fidelity=yes "with space"="a b"
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD ["true"]
STOPSIGNAL SIGTERM
ONBUILD RUN echo onbuild
SHELL ["/bin/sh", "-c"]
USER 1000:1000
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
"#;

/// One tar entry, as far as an image's file system is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TarEntry {
    path: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    /// Symbolic link target, or the hard link's target entry.
    link: Option<Vec<u8>>,
    /// sha256 of the content.
    content: String,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn uncompressed(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .expect("gzip layer");
        out
    } else {
        assert!(
            !bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            "a zstd layer: this test reads gzip and plain tars"
        );
        bytes
    }
}

/// Every entry of a layer tar, with owners from PAX records when the header cannot hold them.
fn entries(layer: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(layer);
    let mut list = Vec::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("a tar entry");
        let header = entry.header().clone();
        let mut uid = header.uid().expect("uid");
        let mut gid = header.gid().expect("gid");
        if let Some(extensions) = entry.pax_extensions().expect("pax") {
            for extension in extensions {
                let extension = extension.expect("pax record");
                let value = || extension.value().expect("pax value").parse::<u64>().ok();
                match extension.key() {
                    Ok("uid") => uid = value().unwrap_or(uid),
                    Ok("gid") => gid = value().unwrap_or(gid),
                    _ => {}
                }
            }
        }
        let path = entry.path_bytes().into_owned();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("content");
        list.push(TarEntry {
            path,
            kind: header.entry_type().as_byte(),
            mode: header.mode().expect("mode"),
            uid,
            gid,
            size: content.len() as u64,
            link,
            content: sha256(&content),
        });
    }
    list
}

/// The Engine's own image: `docker save`, in whichever of the three layouts the Engine writes
/// (links resolved: Docker 20.10 writes a repeated layer as a link to its first place).
fn engine_image(name: &str) -> (serde_json::Value, Vec<Vec<u8>>) {
    let out = command("docker", &["save", name]);
    assert!(
        out.status.success(),
        "docker save {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let mut archive = tar::Archive::new(&out.stdout[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .unwrap()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let folder = name.rsplit_once('/').map_or("", |(folder, _)| folder);
            let mut parts: Vec<&str> = folder.split('/').filter(|p| !p.is_empty()).collect();
            for part in target.split('/') {
                match part {
                    "" | "." => {}
                    ".." => {
                        parts.pop();
                    }
                    part => parts.push(part),
                }
            }
            let resolved = parts.join("/");
            links.insert(name.clone(), resolved);
        } else if kind.is_file() {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            files.insert(name, bytes);
        }
    }
    let read = |name: &str| -> Vec<u8> {
        let resolved = links.get(name).map_or(name, String::as_str);
        files
            .get(resolved)
            .unwrap_or_else(|| panic!("`{name}` is not in the Engine's export"))
            .clone()
    };
    let manifest: serde_json::Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    let config = serde_json::from_slice(&read(manifest[0]["Config"].as_str().unwrap())).unwrap();
    let layers = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| uncompressed(read(l.as_str().unwrap())))
        .collect();
    (config, layers)
}

/// The pushed image, read back from the registry by its manifest digest.
async fn registry_image(repository: &str, digest: &str) -> (serde_json::Value, Vec<Vec<u8>>) {
    let tb = testbed();
    let client = http_client();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let answer = client
                .get(format!("http://{}/v2/{repository}/{path}", tb.registry))
                .basic_auth(&tb.user, Some(&tb.password))
                .header(
                    "Accept",
                    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
                )
                .send()
                .await
                .unwrap();
            assert!(
                answer.status().is_success(),
                "GET {path}: {}",
                answer.status()
            );
            answer.bytes().await.unwrap().to_vec()
        }
    };
    let manifest_bytes = get(format!("manifests/{digest}")).await;
    assert_eq!(sha256(&manifest_bytes), digest);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config_bytes = get(format!("blobs/{config_digest}")).await;
    assert_eq!(sha256(&config_bytes), config_digest);
    let mut layers = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let bytes = get(format!("blobs/{digest}")).await;
        assert_eq!(sha256(&bytes), digest, "the blob is what its digest says");
        assert_eq!(bytes.len() as u64, layer["size"].as_u64().unwrap());
        layers.push(uncompressed(bytes));
    }
    (serde_json::from_slice(&config_bytes).unwrap(), layers)
}

/// Removes the kept build image even when an assertion fails.
struct KeptImage(String);

impl Drop for KeptImage {
    fn drop(&mut self) {
        let _ = command("docker", &["image", "rm", &self.0]);
    }
}

#[tokio::test]
async fn the_pushed_image_equals_the_engines_own_entry_by_entry() {
    let repository = unique_repository("fidelity");
    // `/etc/hosts` and `/etc/resolv.conf` in the image keep no-op steps' layers empty (see
    // `export::an_image_that_lists_a_layer_twice_is_pushed_whole`).
    let context = fixture(&[
        ("Dockerfile", DOCKERFILE),
        ("ctx.txt", "from the context\n"),
        ("hosts", "127.0.0.1 localhost\n"),
        ("resolv.conf", ""),
    ]);
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .input("build-args", &format!("RUN_ID={}", uuid::Uuid::new_v4()))
        .env("ECR_MULTIARCH_KEEP_IMAGES", "1")
        .run();
    let kept: Vec<&str> = result
        .stdout
        .lines()
        .filter(|l| l.contains("(ECR_MULTIARCH_KEEP_IMAGES)"))
        .filter_map(|l| l.split("in the Engine as `").nth(1))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    let _guards: Vec<KeptImage> = kept.iter().map(|n| KeptImage((*n).to_owned())).collect();
    result.assert_success();
    assert_eq!(kept.len(), 1, "{}", result.stdout);

    let platform_digests: serde_json::Value =
        serde_json::from_str(&result.outputs["platform-digests"]).unwrap();
    let digest = platform_digests["linux/amd64"].as_str().unwrap();
    let (pushed_config, pushed_layers) = registry_image(&repository, digest).await;
    let (engine_config, engine_layers) = engine_image(kept[0]);

    // Field by field.
    let fields = |config: &serde_json::Value| -> BTreeMap<String, serde_json::Value> {
        config
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(fields(&pushed_config), fields(&engine_config));
    let settings = &pushed_config["config"];
    assert!(settings["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "B=two words"));
    assert_eq!(settings["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(settings["Cmd"], serde_json::json!(["echo hi"]));
    assert_eq!(settings["WorkingDir"], "/f/dir");
    assert_eq!(settings["User"], "1000:1000");
    assert!(settings["ExposedPorts"]["53/udp"].is_object(), "{settings}");
    assert!(settings["Volumes"]["/data"].is_object(), "{settings}");
    assert_eq!(settings["Labels"]["with space"], "a b");
    assert_eq!(
        settings["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "true"])
    );
    assert_eq!(settings["StopSignal"], "SIGTERM");
    assert_eq!(settings["OnBuild"], serde_json::json!(["RUN echo onbuild"]));
    assert_eq!(settings["Shell"], serde_json::json!(["/bin/sh", "-c"]));

    // Entry by entry, layer by layer.
    assert_eq!(pushed_layers.len(), engine_layers.len());
    let diff_ids = pushed_config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(pushed_layers.len(), diff_ids.len());
    let mut all = Vec::new();
    for (i, ((pushed, engine), diff_id)) in pushed_layers
        .iter()
        .zip(&engine_layers)
        .zip(diff_ids)
        .enumerate()
    {
        assert_eq!(&sha256(pushed), diff_id.as_str().unwrap(), "layer {i}");
        let (pushed, engine) = (entries(pushed), entries(engine));
        assert_eq!(pushed.len(), engine.len(), "layer {i}");
        for (p, e) in pushed.iter().zip(&engine) {
            assert_eq!(p, e, "layer {i}");
        }
        all.extend(pushed);
    }
    // Repeated identical layers (the two `RUN true`) are pushed at each place.
    let mut distinct: Vec<&str> = diff_ids.iter().map(|d| d.as_str().unwrap()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() < diff_ids.len(), "{diff_ids:?}");

    // The fixture holds what it claims, so that equality means something.
    let find = |path: &[u8]| -> &TarEntry {
        all.iter()
            .rev()
            .find(|e| e.path.strip_suffix(b"/").unwrap_or(&e.path) == path)
            .unwrap_or_else(|| panic!("no `{}` in the image", String::from_utf8_lossy(path)))
    };
    let kind = |path: &[u8]| tar::EntryType::new(find(path).kind);
    // Three names of one file: the first in the tar holds it, the others link to it.
    let names: [&[u8]; 3] = [b"f/dir/hard link 2", b"f/file", b"f/hardlink"];
    let links = names.iter().filter(|n| kind(n).is_hard_link()).count();
    assert_eq!(links, 2, "two hard links among {names:?}");
    assert_eq!(find(b"f/abs").link.as_deref(), Some(&b"/f/file"[..]));
    assert_eq!(find(b"f/dir/rel").link.as_deref(), Some(&b"../file"[..]));
    assert_eq!(
        find(b"f/dangling").link.as_deref(),
        Some(&b"/nowhere/at/all"[..])
    );
    assert_eq!(find(b"f/longlink").link.as_ref().map(Vec::len), Some(221));
    assert!(kind(b"f/fifo").is_fifo());
    assert!(kind(b"f/chardev").is_character_special());
    assert_eq!(find(b"f/setuid").mode & 0o7777, 0o4755);
    assert_eq!(find(b"f/setgid").mode & 0o7777, 0o2755);
    assert_eq!(find(b"f/stickydir").mode & 0o7777, 0o1777);
    assert_eq!(find(b"f/zero").mode & 0o7777, 0);
    assert!(kind(b"f/empty/nested").is_dir());
    for (path, id) in [
        (&b"f/nobody"[..], 65534),
        (b"f/million", 1_000_000),
        (b"f/max", 4_294_967_294),
    ] {
        assert_eq!((find(path).uid, find(path).gid), (id, id), "{path:?}");
    }
    find(b"f/with space");
    find("f/ünïcödé-名前".as_bytes());
    find(b"f/bad\xffbyte");
    find(format!("f/{}", "n".repeat(210)).as_bytes());
    assert_eq!(find(b"f/random").size, 20_000_000);
    assert!(all.iter().any(|e| e.path == b"f/.wh.gone"), "a whiteout");
    assert!(
        all.iter()
            .any(|e| e.path == b"f/opaque/.wh..wh..opq" || e.path == b"f/opaque/.wh.old"),
        "the folder made again hides what it held"
    );
}
