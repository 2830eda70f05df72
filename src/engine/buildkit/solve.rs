//! One build as a BuildKit `Solve`: the request (frontend, build args,
//! exporter, cache imports and exports) and the response's image id.
//!
//! Cache: on the containerd image store BuildKit can write registry cache,
//! so each target writes ECR's form of it (`image-manifest=true`, OCI media
//! types, `mode=max`, `ignore-error=true`) to `<repository>:buildcache` and
//! every build reads the caches of the targets it shares stages with. On a
//! graph-driver engine the only export is inline cache (in the image
//! config), read back from the previous `latest` images. A cache import
//! that fails never fails the build: BuildKit skips it.

use std::collections::HashMap;

use bollard_buildkit_proto::moby::buildkit::v1::{
    CacheOptions, CacheOptionsEntry, Exporter, SolveRequest,
};

use crate::engine::BuildJob;

/// The tag a repository's registry cache lives under.
pub(crate) const CACHE_TAG: &str = "buildcache";

/// The cache a build reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachePlan {
    /// References read as cache.
    pub(crate) imports: Vec<String>,
    /// Cache exports: `(type, attributes)`.
    pub(crate) exports: Vec<(String, Vec<(String, String)>)>,
}

/// Whether `r` names an image (as opposed to a bare image id, which a
/// cache import cannot take).
fn is_reference(r: &str) -> bool {
    !r.is_empty() && !r.starts_with("sha256:") && !r.chars().all(|c| c.is_ascii_hexdigit())
}

/// The cache plan of `job` on an engine that can (`registry_cache`) or
/// cannot export registry cache.
pub(crate) fn cache_plan(job: &BuildJob, registry_cache: bool) -> CachePlan {
    if registry_cache {
        let imports = job
            .cache_repos
            .iter()
            .map(|r| format!("{r}:{CACHE_TAG}"))
            .collect();
        let exports = job
            .cache_to
            .iter()
            .map(|repo| {
                let attrs = [
                    ("ref", format!("{repo}:{CACHE_TAG}")),
                    ("mode", "max".to_string()),
                    ("image-manifest", "true".to_string()),
                    ("oci-mediatypes", "true".to_string()),
                    ("ignore-error", "true".to_string()),
                ];
                let attrs = attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                ("registry".to_string(), attrs)
            })
            .collect();
        CachePlan { imports, exports }
    } else {
        let imports = job
            .cache_from
            .iter()
            .filter(|r| is_reference(r))
            .cloned()
            .collect();
        // Inline cache rides in the image: only a build that makes one has it.
        let exports = if job.names.is_empty() {
            Vec::new()
        } else {
            vec![("inline".to_string(), Vec::new())]
        };
        CachePlan { imports, exports }
    }
}

/// The `Solve` request for `job` in session `session`, tracked as `reference`.
pub(crate) fn request(
    job: &BuildJob,
    session: &str,
    reference: &str,
    cache: &CachePlan,
) -> SolveRequest {
    let mut attrs: HashMap<String, String> = HashMap::new();
    attrs.insert(
        "filename".to_string(),
        super::filesync::DOCKERFILE_NAME.to_string(),
    );
    // As the engine's own /build: a base tag is looked up in its registry,
    // with the local image as the fallback.
    attrs.insert("image-resolve-mode".to_string(), "default".to_string());
    for (k, v) in &job.build_args {
        attrs.insert(format!("build-arg:{k}"), v.clone());
    }
    let imports: Vec<CacheOptionsEntry> = cache
        .imports
        .iter()
        .map(|r| CacheOptionsEntry {
            r#type: "registry".to_string(),
            attrs: HashMap::from([("ref".to_string(), r.clone())]),
        })
        .collect();
    if !imports.is_empty() {
        // Older frontends read the imports from here (BuildKit v0.8).
        let json: Vec<serde_json::Value> = imports
            .iter()
            .map(|e| serde_json::json!({"Type": e.r#type, "Attrs": e.attrs}))
            .collect();
        attrs.insert(
            "cache-imports".to_string(),
            serde_json::Value::Array(json).to_string(),
        );
    }
    let exports = cache
        .exports
        .iter()
        .map(|(t, a)| CacheOptionsEntry {
            r#type: t.clone(),
            attrs: a.iter().cloned().collect(),
        })
        .collect();
    let (exporter, exporter_attrs, exporters) = if job.names.is_empty() {
        // A shared stage: built into BuildKit's cache, no image.
        (String::new(), HashMap::new(), Vec::new())
    } else {
        let a = HashMap::from([("name".to_string(), job.names.join(","))]);
        let e = vec![Exporter {
            r#type: "moby".to_string(),
            attrs: a.clone(),
        }];
        ("moby".to_string(), a, e)
    };
    SolveRequest {
        r#ref: reference.to_string(),
        // Both the v0.8 fields and the v0.13 list, as BuildKit's own client sends.
        exporter_deprecated: exporter,
        exporter_attrs_deprecated: exporter_attrs,
        exporters,
        session: session.to_string(),
        frontend: "dockerfile.v0".to_string(),
        frontend_attrs: attrs,
        cache: Some(CacheOptions {
            exports,
            imports,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The built image's id from the exporter's response: the config digest on
/// a graph-driver engine, the manifest digest on the containerd store
/// (each is the engine's image id there).
pub(crate) fn image_id(response: &HashMap<String, String>) -> Option<String> {
    response
        .get("containerimage.digest")
        .or_else(|| response.get("containerimage.config.digest"))
        .filter(|d| d.starts_with("sha256:"))
        .cloned()
}

/// The `# syntax=` directive removed when it names the stable Dockerfile
/// frontend: the engine's built-in frontend then runs the file, and no
/// frontend image is pulled from Docker Hub. (Preflight refused anything the
/// built-in frontend cannot run.) Other frontends, and `-labs`, are kept.
pub(crate) fn strip_syntax(dockerfile: &str) -> String {
    let mut out = String::with_capacity(dockerfile.len());
    let mut in_directives = true;
    for line in dockerfile.split_inclusive('\n') {
        if in_directives {
            let t = line.trim();
            let directive = t
                .strip_prefix('#')
                .and_then(|d| d.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()));
            match directive {
                Some((k, v)) if k == "syntax" && is_stable_frontend(&v) => continue,
                Some(_) => {}
                None => in_directives = false,
            }
        }
        out.push_str(line);
    }
    out
}

fn is_stable_frontend(image: &str) -> bool {
    let image = image.strip_prefix("docker.io/").unwrap_or(image);
    let name = image.split(['@', ':']).next().unwrap_or(image);
    name == "docker/dockerfile" && !image.contains("labs")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn job(names: &[&str], cache_from: &[&str]) -> BuildJob {
        BuildJob {
            dockerfile: "FROM x\n".into(),
            root: "/tmp".into(),
            entries: Vec::new(),
            build_args: BTreeMap::from([("A".to_string(), "1".to_string())]),
            cache_from: cache_from.iter().map(|s| s.to_string()).collect(),
            auth: None,
            secrets: std::sync::Arc::default(),
            names: names.iter().map(|s| s.to_string()).collect(),
            cache_repos: vec!["r:5000/app-api".into(), "r:5000/app-web".into()],
            cache_to: Some("r:5000/app-api".into()),
            base_images: Vec::new(),
            no_cache: false,
        }
    }

    #[test]
    fn the_containerd_store_writes_ecr_style_registry_cache() {
        let j = job(&["r:5000/app-api:abc"], &["r:5000/app-api:latest"]);
        let plan = cache_plan(&j, true);
        assert_eq!(
            plan.imports,
            ["r:5000/app-api:buildcache", "r:5000/app-web:buildcache"]
        );
        let (kind, attrs) = &plan.exports[0];
        assert_eq!(kind, "registry");
        for want in [
            ("ref", "r:5000/app-api:buildcache"),
            ("mode", "max"),
            ("image-manifest", "true"),
            ("oci-mediatypes", "true"),
            ("ignore-error", "true"),
        ] {
            assert!(
                attrs.contains(&(want.0.to_string(), want.1.to_string())),
                "{want:?} missing from {attrs:?}"
            );
        }
        let req = request(&j, "sid", "ref", &plan);
        assert_eq!(req.exporters[0].attrs["name"], "r:5000/app-api:abc");
        assert_eq!(req.exporter_deprecated, "moby");
        assert_eq!(req.frontend_attrs["build-arg:A"], "1");
        assert!(req.frontend_attrs["cache-imports"].contains("app-web:buildcache"));
    }

    #[test]
    fn a_graph_driver_engine_gets_inline_cache_and_the_previous_images() {
        let j = job(
            &["app-api:abc"],
            &["r:5000/app-api:latest", "sha256:abc", ""],
        );
        let plan = cache_plan(&j, false);
        assert_eq!(plan.imports, ["r:5000/app-api:latest"]);
        assert_eq!(plan.exports, [("inline".to_string(), Vec::new())]);
        let shared = job(&[], &[]);
        let plan = cache_plan(&shared, false);
        assert!(plan.exports.is_empty());
        let req = request(&shared, "sid", "ref", &plan);
        assert!(req.exporters.is_empty() && req.exporter_deprecated.is_empty());
        assert!(!req.frontend_attrs.contains_key("cache-imports"));
    }

    #[test]
    fn the_stable_syntax_directive_is_stripped_and_others_kept() {
        let df =
            "# syntax=docker/dockerfile:1\n# escape=\\\nARG B\nFROM x\n# syntax=kept-as-comment\n";
        assert_eq!(
            strip_syntax(df),
            "# escape=\\\nARG B\nFROM x\n# syntax=kept-as-comment\n"
        );
        let labs = "# syntax=docker/dockerfile:1-labs\nFROM x\n";
        assert_eq!(strip_syntax(labs), labs);
        let other = "#syntax = example.com/my/frontend:2\nFROM x\n";
        assert_eq!(strip_syntax(other), other);
        assert_eq!(
            strip_syntax("#syntax=docker.io/docker/dockerfile:1.7@sha256:ab\nFROM x\n"),
            "FROM x\n"
        );
    }

    #[test]
    fn the_image_id_is_the_exported_digest() {
        let r = HashMap::from([("containerimage.digest".to_string(), "sha256:aa".to_string())]);
        assert_eq!(image_id(&r), Some("sha256:aa".to_string()));
        assert_eq!(image_id(&HashMap::new()), None);
    }
}
