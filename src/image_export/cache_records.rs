//! Config equivalence: two builds of the same inputs that differ only in BuildKit's inline
//! cache records are the same image.

/// BuildKit's inline cache in an image config: its cache records for the image's layers.
pub const INLINE_CACHE_KEY: &str = "moby.buildkit.cache.v0";

/// Whether two image configs describe the same image but for the content of their inline
/// cache records. BuildKit writes those records in an order and with a set of intermediate
/// results that vary from build to build (seen on Docker 20.10: the record of a cached `RUN`
/// lists its layer in one build and not in the next), while the layers, history and settings
/// stay the same. Either carries the cache, so the image the repository holds can stand for the
/// new one, and a rebuild of the same inputs keeps its digest. A config that has records and
/// one that has none are different images (`repository-cache` was turned on or off).
#[must_use]
pub fn same_image_but_cache_records(held: &[u8], built: &[u8]) -> bool {
    let parse = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).ok();
    let (Some(mut held), Some(mut built)) = (parse(held), parse(built)) else {
        return false;
    };
    let (Some(held_map), Some(built_map)) = (held.as_object_mut(), built.as_object_mut()) else {
        return false;
    };
    let held_cache = held_map.remove(INLINE_CACHE_KEY);
    let built_cache = built_map.remove(INLINE_CACHE_KEY);
    held_cache.is_some() == built_cache.is_some() && held_map == built_map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_that_differ_only_in_cache_records_are_the_same_image() {
        let config = |cache: Option<&str>, created: &str| {
            let mut value = serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "created": created,
                "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]},
            });
            if let Some(cache) = cache {
                value[INLINE_CACHE_KEY] = serde_json::json!(cache);
            }
            serde_json::to_vec(&value).expect("json")
        };
        let t = "2025-01-01T00:00:00Z";
        assert!(same_image_but_cache_records(
            &config(Some("W3sib25lIjoxfV0="), t),
            &config(Some("W3sidHdvIjoyfV0="), t)
        ));
        assert!(!same_image_but_cache_records(
            &config(Some("W3sib25lIjoxfV0="), t),
            &config(Some("W3sib25lIjoxfV0="), "2025-01-02T00:00:00Z")
        ));
        assert!(!same_image_but_cache_records(
            &config(None, t),
            &config(Some("W3sib25lIjoxfV0="), t)
        ));
        assert!(same_image_but_cache_records(
            &config(None, t),
            &config(None, t)
        ));
    }
}
