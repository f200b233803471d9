//! What the Engine shows of a built image without exporting it (`GET /images/{name}/json` and
//! `/history`), and whether an image config (the repository's copy) is that image's config as
//! far as that shows (issue 17: the push reads no export when nothing new needs uploading).
//!
//! An image config is its platform, its creation time and author, the runtime config, the
//! history and the layers (`rootfs`), plus BuildKit's inline cache records. Inspect and history
//! show all of it but for these, which are therefore not compared:
//! - the inline cache records (`moby.buildkit.cache.v0`): BuildKit varies them between builds
//!   of the same inputs, and either copy carries the cache. Only whether the config has them
//!   is compared, from whether the build asked for them;
//! - the sub-second part of each history entry's time (history gives whole seconds; the image's
//!   own `created`, which BuildKit takes from the last step, is compared to the nanosecond);
//! - which history entries own a layer (`empty_layer`): the layers themselves are compared, and
//!   BuildKit sets the flag from whether the step, named by `created_by`, changed the files;
//! - the JSON spelling (key order, zero values written or left out), which no reader sees.
//!
//! A config that holds anything else (an `os.features` list, a history entry's `author`, a
//! runtime setting this Engine API version does not show, BuildKit 0.10's build info record)
//! is never taken for the built image: the export is read then.

use bollard::models::{ImageHistoryResponseItem, ImageInspect};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{BuiltImage, Engine, Error};
use crate::image_export::INLINE_CACHE_KEY;

/// Go's zero time in Unix seconds: what a history entry without a time shows on the classic
/// store (`time.Time{}.Unix()`).
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// A built image as the Engine shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectedImage {
    architecture: String,
    os: String,
    variant: String,
    os_version: String,
    author: String,
    /// `None` when the image has none (Go's zero time on the classic store).
    created: Option<DateTime<Utc>>,
    /// The runtime config (`Env`, `Cmd`, `Labels`...), without zero values.
    config: Map<String, Value>,
    /// Oldest first (the Engine lists the newest first).
    history: Vec<HistoryLine>,
    rootfs_type: String,
    diff_ids: Vec<String>,
    /// Whether the build asked BuildKit for inline cache records in the config.
    cache_records: bool,
}

/// One history entry as the history endpoint shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HistoryLine {
    /// Unix seconds.
    created: i64,
    created_by: String,
    comment: String,
}

impl Engine {
    /// The built image as inspect and history show it, read by the build's own name.
    pub async fn inspect(&self, image: &BuiltImage) -> Result<InspectedImage, Error> {
        let failed = |what: &str, source| {
            self.call_failed(
                Some(&image.platform),
                format!(
                    "reading the {what} of the image built for `{}`",
                    image.platform
                ),
                source,
            )
        };
        let inspect = self
            .docker
            .inspect_image(&image.name)
            .await
            .map_err(|source| failed("config", source))?;
        let history = self
            .docker
            .image_history(&image.name)
            .await
            .map_err(|source| failed("history", source))?;
        Ok(InspectedImage::new(inspect, history, image.cache_records))
    }
}

/// Drops the zero values of a Go struct's fields (`null`, `""`, `false`, `0`, `[]`, `{}`):
/// written or left out (`omitempty`), they read back the same.
fn without_zero_values(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(_, value)| match value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A runtime config, as comparable JSON: the health check is a struct of its own, whose zero
/// fields are dropped too; the other fields' values (labels, ports) are kept as they are.
fn runtime_config(config: &Value) -> Option<Map<String, Value>> {
    let mut config = without_zero_values(config.as_object()?);
    if let Some(Value::Object(health)) = config.get_mut("Healthcheck") {
        *health = without_zero_values(health);
    }
    Some(config)
}

/// A text field where absent and empty mean the same.
fn text(value: Option<&Value>) -> Option<&str> {
    match value {
        None | Some(Value::Null) => Some(""),
        Some(Value::String(s)) => Some(s),
        Some(_) => None,
    }
}

/// Whether an RFC 3339 time is `shown` (`None`: Go's zero time, which stands for no time).
fn is_time(value: &str, shown: Option<DateTime<Utc>>) -> bool {
    DateTime::parse_from_rfc3339(value).is_ok_and(|parsed| {
        let parsed = parsed.with_timezone(&Utc);
        shown.map_or(parsed.timestamp() == GO_ZERO_TIME, |shown| shown == parsed)
    })
}

impl InspectedImage {
    fn new(
        inspect: ImageInspect,
        history: Vec<ImageHistoryResponseItem>,
        cache_records: bool,
    ) -> InspectedImage {
        let config = inspect
            .config
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok())
            .and_then(|c| runtime_config(&c))
            .unwrap_or_default();
        let (rootfs_type, diff_ids) = inspect
            .root_fs
            .map(|r| (r.typ, r.layers.unwrap_or_default()))
            .unwrap_or_default();
        InspectedImage {
            architecture: inspect.architecture.unwrap_or_default(),
            os: inspect.os.unwrap_or_default(),
            variant: inspect.variant.unwrap_or_default(),
            os_version: inspect.os_version.unwrap_or_default(),
            author: inspect.author.unwrap_or_default(),
            created: inspect.created.filter(|t| t.timestamp() != GO_ZERO_TIME),
            config,
            history: history
                .into_iter()
                .rev()
                .map(|h| HistoryLine {
                    created: h.created,
                    created_by: h.created_by,
                    comment: h.comment,
                })
                .collect(),
            rootfs_type,
            diff_ids,
            cache_records,
        }
    }

    /// Whether `config` (an image config's bytes) is this image's config, but perhaps for the
    /// content of its inline cache records and what the Engine does not show (see the module
    /// note). Anything unexpected in `config` answers no.
    #[must_use]
    pub fn matches_config(&self, config: &[u8]) -> bool {
        let Ok(Value::Object(config)) = serde_json::from_slice::<Value>(config) else {
            return false;
        };
        const COMPARED: [&str; 10] = [
            "architecture",
            "os",
            "variant",
            "os.version",
            "author",
            "created",
            "config",
            "history",
            "rootfs",
            INLINE_CACHE_KEY,
        ];
        if config.keys().any(|key| !COMPARED.contains(&key.as_str())) {
            return false;
        }
        let texts = [
            ("architecture", &self.architecture),
            ("os", &self.os),
            ("variant", &self.variant),
            ("os.version", &self.os_version),
            ("author", &self.author),
        ];
        let created = match config.get("created") {
            None | Some(Value::Null) => self.created.is_none(),
            Some(Value::String(created)) => is_time(created, self.created),
            Some(_) => false,
        };
        let runtime = match config.get("config") {
            None | Some(Value::Null) => Some(Map::new()),
            Some(runtime) => runtime_config(runtime),
        };
        texts
            .iter()
            .all(|(key, shown)| text(config.get(*key)) == Some(shown.as_str()))
            && created
            && runtime.as_ref() == Some(&self.config)
            && config.contains_key(INLINE_CACHE_KEY) == self.cache_records
            && self.same_rootfs(config.get("rootfs"))
            && self.same_history(config.get("history"))
    }

    fn same_rootfs(&self, rootfs: Option<&Value>) -> bool {
        let Some(Value::Object(rootfs)) = rootfs else {
            return false;
        };
        let diff_ids: Option<Vec<&str>> = match rootfs.get("diff_ids") {
            Some(Value::Array(ids)) => ids.iter().map(Value::as_str).collect(),
            None | Some(Value::Null) => Some(Vec::new()),
            Some(_) => None,
        };
        rootfs.keys().all(|key| key == "type" || key == "diff_ids")
            && text(rootfs.get("type")) == Some(self.rootfs_type.as_str())
            && diff_ids.is_some_and(|ids| ids == self.diff_ids)
    }

    fn same_history(&self, history: Option<&Value>) -> bool {
        let entries = match history {
            Some(Value::Array(entries)) => entries.as_slice(),
            None | Some(Value::Null) => &[],
            Some(_) => return false,
        };
        entries.len() == self.history.len()
            && entries.iter().zip(&self.history).all(|(entry, shown)| {
                let Value::Object(entry) = entry else {
                    return false;
                };
                let created = match entry.get("created") {
                    // No time: 0 on the containerd store, Go's zero time on the classic one.
                    None | Some(Value::Null) => shown.created == 0 || shown.created == GO_ZERO_TIME,
                    Some(Value::String(created)) => DateTime::parse_from_rfc3339(created)
                        .is_ok_and(|t| t.timestamp() == shown.created),
                    Some(_) => false,
                };
                let known = ["created", "created_by", "comment", "empty_layer", "author"];
                entry.keys().all(|key| known.contains(&key.as_str()))
                    && text(entry.get("author")) == Some("")
                    && matches!(entry.get("empty_layer"), None | Some(Value::Bool(_)))
                    && created
                    && text(entry.get("created_by")) == Some(shown.created_by.as_str())
                    && text(entry.get("comment")) == Some(shown.comment.as_str())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ImageInspectRootFs;

    /// A config as BuildKit writes it, and the inspect and history the Engine answers for it
    /// (as Docker 20.10 answers: every runtime field written, zero or not).
    fn image() -> (Value, ImageInspect, Vec<ImageHistoryResponseItem>) {
        let config = serde_json::json!({
            "architecture": "arm64",
            "os": "linux",
            "variant": "v8",
            "created": "2026-12-01T16:55:12.002951432Z",
            "config": {
                "User": "1000",
                "ExposedPorts": {"80/tcp": {}},
                "Env": ["PATH=/bin", "A=1"],
                "Cmd": ["cat", "/app/hello.txt"],
                "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000_u64},
                "ArgsEscaped": true,
                "WorkingDir": "/app",
                "OnBuild": null,
                "Labels": {"empty": "", "x": "y"},
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1", "sha256:2"]},
            "history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": "base"},
                {"created": "2026-12-01T16:55:11.7Z", "created_by": "ENV A=1",
                 "comment": "buildkit.dockerfile.v0", "empty_layer": true},
                {"created": "2026-12-01T16:55:12.002951432Z", "created_by": "COPY . .",
                 "comment": "buildkit.dockerfile.v0"},
            ],
            INLINE_CACHE_KEY: "W3sib25lIjoxfV0=",
        });
        let mut shown = config["config"].clone();
        shown["Hostname"] = Value::from("");
        shown["Volumes"] = Value::Null;
        shown["Healthcheck"]["Timeout"] = Value::from(0);
        let inspect = ImageInspect {
            architecture: Some("arm64".to_owned()),
            os: Some("linux".to_owned()),
            variant: Some("v8".to_owned()),
            author: Some(String::new()),
            comment: Some("buildkit.dockerfile.v0".to_owned()),
            created: Some(
                DateTime::parse_from_rfc3339("2026-12-01T16:55:12.002951432Z")
                    .expect("time")
                    .with_timezone(&Utc),
            ),
            config: Some(serde_json::from_value(shown).expect("a runtime config")),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".to_owned(),
                layers: Some(vec!["sha256:1".to_owned(), "sha256:2".to_owned()]),
            }),
            ..ImageInspect::default()
        };
        let line = |created, created_by: &str, comment: &str| ImageHistoryResponseItem {
            created,
            created_by: created_by.to_owned(),
            comment: comment.to_owned(),
            ..ImageHistoryResponseItem::default()
        };
        let history = vec![
            line(1_796_144_112, "COPY . .", "buildkit.dockerfile.v0"),
            line(1_796_144_111, "ENV A=1", "buildkit.dockerfile.v0"),
            line(1_704_067_200, "base", ""),
        ];
        (config, inspect, history)
    }

    fn matches(config: &Value, cache_records: bool) -> bool {
        let (_, inspect, history) = image();
        InspectedImage::new(inspect, history, cache_records)
            .matches_config(&serde_json::to_vec(config).expect("json"))
    }

    #[test]
    fn a_config_that_differs_only_in_its_cache_records_matches() {
        let (mut config, _, _) = image();
        assert!(matches(&config, true));
        config[INLINE_CACHE_KEY] = Value::from("W3sidHdvIjoyfV0=");
        assert!(matches(&config, true));
    }

    #[test]
    fn cache_records_present_or_not_must_be_what_the_build_asked_for() {
        let (mut config, _, _) = image();
        assert!(!matches(&config, false));
        config
            .as_object_mut()
            .expect("object")
            .remove(INLINE_CACHE_KEY);
        assert!(matches(&config, false));
        assert!(!matches(&config, true));
    }

    #[rstest::rstest]
    #[case::a_label("/config/Labels/x", "z")]
    #[case::an_empty_label("/config/Labels/empty", "set")]
    #[case::the_environment("/config/Env/1", "A=2")]
    #[case::the_health_check("/config/Healthcheck/Interval", "6000000000")]
    #[case::the_architecture("/architecture", "amd64")]
    #[case::the_variant("/variant", "v7")]
    #[case::the_image_time_by_a_nanosecond("/created", "2026-12-01T16:55:12.002951433Z")]
    #[case::a_layer("/rootfs/diff_ids/1", "sha256:3")]
    #[case::a_step("/history/2/created_by", "COPY a .")]
    #[case::a_step_time_by_a_second("/history/1/created", "2026-12-01T16:55:12.7Z")]
    #[case::a_step_comment("/history/1/comment", "imported")]
    fn a_config_that_differs_in_what_the_engine_shows_does_not_match(
        #[case] pointer: &str,
        #[case] value: &str,
    ) {
        let (mut config, _, _) = image();
        let field = config.pointer_mut(pointer).expect("field");
        *field = match field {
            Value::Number(_) => Value::from(value.parse::<u64>().expect("number")),
            _ => Value::from(value),
        };
        assert!(!matches(&config, true), "{pointer}");
    }

    #[rstest::rstest]
    #[case::os_features("/os.features", serde_json::json!(["win32k"]))]
    #[case::build_info("/moby.buildkit.buildinfo.v1", serde_json::json!("e30="))]
    #[case::a_history_author("/history/1/author", serde_json::json!("someone"))]
    #[case::an_unknown_runtime_field("/config/Domainname", serde_json::json!("example"))]
    #[case::an_unknown_rootfs_field("/rootfs/base_layer", serde_json::json!("sha256:0"))]
    #[case::a_step_more("/history/3", serde_json::json!({"created_by": "RUN x"}))]
    fn what_the_engine_cannot_show_never_matches(#[case] pointer: &str, #[case] value: Value) {
        let (mut config, _, _) = image();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        match config.pointer_mut(parent).expect("parent") {
            Value::Object(object) => {
                object.insert(key.to_owned(), value);
            }
            Value::Array(array) => array.push(value),
            _ => unreachable!("a container"),
        }
        assert!(!matches(&config, true), "{pointer}");
    }

    #[test]
    fn zero_values_written_or_left_out_are_the_same() {
        let (mut config, _, _) = image();
        config["config"]["StopSignal"] = Value::from("");
        config["config"]["Entrypoint"] = Value::Null;
        config["os.version"] = Value::from("");
        config["history"][1]["empty_layer"] = Value::Bool(true);
        assert!(matches(&config, true));
    }

    #[test]
    fn a_sub_second_step_time_is_what_the_engine_cannot_show() {
        let (mut config, _, _) = image();
        config["history"][1]["created"] = Value::from("2026-12-01T16:55:11.9Z");
        assert!(matches(&config, true));
    }
}
