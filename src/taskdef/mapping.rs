//! Which Dockerfile stage builds which container (SPEC step 2), and which
//! containers are *external* (another registry's image, left untouched).
//!
//! A container's image is *ours* when its host is a private ECR registry or
//! the `--registry` override, or when an explicit `--target` names the
//! container (whatever its image: the user asked). A placeholder
//! (`<IMAGE1_NAME>`, what CodePipeline fills in from imageDetail.json) is ours
//! when a stage is named like its container: a pipeline moving to stackbake
//! keeps its taskdef, and gets the image pinned instead of a placeholder that
//! nothing would fill. Other placeholders and host-less images (`nginx:1.25`,
//! Docker Hub) without a `--target` are external, as are `public.ecr.aws`,
//! `ghcr.io` and every other host.
//!
//! An ours container maps, in order of preference, to:
//! 1. the stage given by `--target CONTAINER=STAGE`;
//! 2. the stage named like the container (case-insensitive);
//! 3. the stage named like the repository's last path component
//!    (`team/bash-dog-api` → `bash-dog-api`);
//! 4. the stage named like a `-`-suffix of that component, longest first:
//!    `bash-dog-api-worker` tries `dog-api-worker`, `api-worker`, then
//!    `worker`. Longest first, because a longer match is the more specific
//!    one: with stages `worker` and `api-worker`, the repository
//!    `bash-dog-api-worker` clearly means `api-worker`.

use std::collections::BTreeMap;

use super::image_ref::Image;
use super::{Container, TaskDef, TaskdefError};
use crate::reference::{Host, ImageRef, Repository};

/// How one container of the task definition is produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// Built from a Dockerfile stage and pushed to our registry.
    Target {
        /// Container name in the task definition.
        container: String,
        /// The Dockerfile stage (lowercase) that builds its image.
        stage: String,
        /// Repository path to push to, without host or tag (`bash-dog-api`).
        repository: String,
        /// The container's `image` as written in the task definition.
        source_image: String,
    },
    /// Another registry's image; stackbake leaves it untouched.
    External {
        /// Container name in the task definition.
        container: String,
        /// Its image, verbatim.
        image: String,
    },
}

impl Mapping {
    /// The container this mapping is about.
    pub(crate) fn container(&self) -> &str {
        match self {
            Self::Target { container, .. } | Self::External { container, .. } => container,
        }
    }
}

/// Maps every container of `td` (in file order) to a stage or marks it
/// external. `stages` are the Dockerfile's stage names, lowercase, in file
/// order; `explicit` are the parsed `--target` flags; `registry` is the
/// `--registry HOST[:PORT]` override. Errors name the container, stage or
/// flag at fault and list what exists.
pub(crate) fn map_containers(
    td: &TaskDef,
    stages: &[String],
    explicit: &[(String, String)],
    registry: Option<&str>,
) -> Result<Vec<Mapping>, TaskdefError> {
    check_registry(registry)?;
    // Unnamed stages (reported as empty names) can be neither matched nor listed.
    let stages: Vec<String> = stages.iter().filter(|s| !s.is_empty()).cloned().collect();
    let mapper = Mapper {
        td,
        stages: &stages,
        chosen: explicit_targets(td, &stages, explicit)?,
        registry,
    };
    td.container_list().iter().map(|c| mapper.map(c)).collect()
}

/// Checks that the `--registry` override is a valid `HOST[:PORT]`.
fn check_registry(registry: Option<&str>) -> Result<(), TaskdefError> {
    if let Some(registry) = registry {
        Host::parse(registry).map_err(|source| TaskdefError::InvalidRegistry {
            registry: registry.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// The stage (lowercase) each explicit `--target CONTAINER=STAGE` chooses, by container.
fn explicit_targets<'e>(
    td: &TaskDef,
    stages: &[String],
    explicit: &'e [(String, String)],
) -> Result<BTreeMap<&'e str, String>, TaskdefError> {
    let containers = td.container_list();
    let mut chosen: BTreeMap<&str, String> = BTreeMap::new();
    for (container, stage) in explicit {
        if !containers.iter().any(|c| &c.name == container) {
            return Err(TaskdefError::UnknownTargetContainer {
                container: container.clone(),
                stage: stage.clone(),
                available: td.container_names(),
            });
        }
        let Some(lower) = stages
            .iter()
            .find(|s| s.eq_ignore_ascii_case(stage))
            .cloned()
        else {
            return Err(TaskdefError::UnknownTargetStage {
                container: container.clone(),
                stage: stage.clone(),
                stages: stages.to_vec(),
            });
        };
        if let Some(first) = chosen.get(container.as_str())
            && *first != lower
        {
            return Err(TaskdefError::ConflictingTarget {
                container: container.clone(),
                first: first.clone(),
                second: lower,
            });
        }
        chosen.insert(container, lower);
    }
    Ok(chosen)
}

/// What mapping one container needs: the task definition, the named
/// stages, the explicit choices and the `--registry` override.
struct Mapper<'a> {
    td: &'a TaskDef,
    stages: &'a [String],
    chosen: BTreeMap<&'a str, String>,
    registry: Option<&'a str>,
}

impl Mapper<'_> {
    /// Maps one container, in the order of preference the module describes.
    fn map(&self, c: &Container) -> Result<Mapping, TaskdefError> {
        let image = Image::parse(&c.image).map_err(|source| TaskdefError::InvalidImage {
            container: c.name.clone(),
            image: c.image.clone(),
            source,
        })?;
        if let Some(stage) = self.chosen.get(c.name.as_str()) {
            let repository = match &image {
                Image::Ref(r) => r.repository().to_string(),
                Image::Placeholder(_) => default_repository(self.td, &c.name, stage),
            };
            return Ok(target(c, stage.clone(), repository));
        }
        if let Image::Placeholder(_) = &image
            && let Some(stage) = self.stages.iter().find(|s| s.eq_ignore_ascii_case(&c.name))
        {
            return Ok(target(
                c,
                stage.clone(),
                default_repository(self.td, &c.name, stage),
            ));
        }
        match image {
            Image::Ref(r) if is_ours(&r, self.registry) => self.inferred(c, &r),
            _ => Ok(Mapping::External {
                container: c.name.clone(),
                image: c.image.clone(),
            }),
        }
    }

    /// Maps an ours image without an explicit or same-named stage by inference.
    fn inferred(&self, c: &Container, r: &ImageRef) -> Result<Mapping, TaskdefError> {
        match infer_stage(&c.name, r, self.stages) {
            Some(stage) => Ok(target(c, stage, r.repository().to_string())),
            None => Err(TaskdefError::Unmapped {
                container: c.name.clone(),
                image: c.image.clone(),
                repository: r.repository().to_string(),
                stages: self.stages.to_vec(),
            }),
        }
    }
}

/// The mapping of container `c` to `stage`, pushed to `repository`.
fn target(c: &Container, stage: String, repository: String) -> Mapping {
    Mapping::Target {
        container: c.name.clone(),
        stage,
        repository,
        source_image: c.image.clone(),
    }
}

/// Whether an image lives in a registry we push to.
fn is_ours(image: &ImageRef, registry: Option<&str>) -> bool {
    let Some(host) = image.host() else {
        return false;
    };
    host.ecr().is_some() || registry.is_some_and(|r| r.eq_ignore_ascii_case(host))
}

/// Repository for a placeholder image: `<family>-<stage>`
/// (the SPEC's `<project>-<target>` convention), else the container name.
fn default_repository(td: &TaskDef, container: &str, stage: &str) -> String {
    match td.family() {
        Some(family) => {
            let candidate = format!("{family}-{stage}").to_ascii_lowercase();
            if Repository::parse(&candidate).is_ok() {
                candidate
            } else {
                container.to_ascii_lowercase()
            }
        }
        None => container.to_ascii_lowercase(),
    }
}

/// Rules 2-4 of the module doc: container name, repository name, then its
/// `-`-suffixes longest first.
fn infer_stage(container: &str, image: &ImageRef, stages: &[String]) -> Option<String> {
    let find = |name: &str| {
        stages
            .iter()
            .find(|s| s.eq_ignore_ascii_case(name))
            .cloned()
    };
    if let Some(stage) = find(container) {
        return Some(stage);
    }
    let name = image.repository().last_component();
    if let Some(stage) = find(name) {
        return Some(stage);
    }
    name.match_indices('-')
        .map(|(i, _)| &name[i + 1..])
        .filter(|suffix| !suffix.is_empty())
        .find_map(find)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_TASKDEF: &str = include_str!("../../taskdef.json");

    fn stages(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn example_stages() -> Vec<String> {
        stages(&["base", "assets", "api", "sidecar", "nginx"])
    }

    fn td(containers: &[(&str, &str)]) -> TaskDef {
        let defs: Vec<String> = containers
            .iter()
            .map(|(n, i)| format!(r#"{{"name": "{n}", "image": "{i}"}}"#))
            .collect();
        let text = format!(
            r#"{{"family": "bash-dog", "containerDefinitions": [{}]}}"#,
            defs.join(",")
        );
        match TaskDef::parse(&text) {
            Ok(td) => td,
            Err(e) => panic!("{e}"),
        }
    }

    fn target(container: &str, stage: &str, repository: &str, source: &str) -> Mapping {
        Mapping::Target {
            container: container.into(),
            stage: stage.into(),
            repository: repository.into(),
            source_image: source.into(),
        }
    }

    fn external(container: &str, image: &str) -> Mapping {
        Mapping::External {
            container: container.into(),
            image: image.into(),
        }
    }

    const ECR: &str = "123456789012.dkr.ecr.us-east-2.amazonaws.com";

    #[test]
    fn example_stack_maps_by_name_and_suffix() -> Result<(), TaskdefError> {
        let td = TaskDef::parse(EXAMPLE_TASKDEF)?;
        let m = map_containers(&td, &example_stages(), &[], None)?;
        assert_eq!(
            m,
            vec![
                target(
                    "nginx",
                    "nginx",
                    "bash-dog-nginx",
                    &format!("{ECR}/bash-dog-nginx:latest")
                ),
                target(
                    "bash-dog-api",
                    "api",
                    "bash-dog-api",
                    &format!("{ECR}/bash-dog-api:latest")
                ),
                target(
                    "sidecar",
                    "sidecar",
                    "bash-dog-sidecar",
                    &format!("{ECR}/bash-dog-sidecar:latest")
                ),
                external(
                    "log-router",
                    "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
                ),
            ]
        );
        Ok(())
    }

    #[test]
    fn same_name_is_case_insensitive_and_beats_suffix() -> Result<(), TaskdefError> {
        let img = format!("{ECR}/bash-dog-api:latest");
        let m = map_containers(
            &td(&[("Worker", &img)]),
            &stages(&["api", "worker"]),
            &[],
            None,
        )?;
        assert_eq!(m, vec![target("Worker", "worker", "bash-dog-api", &img)]);
        Ok(())
    }

    #[test]
    fn suffix_rule_uses_last_path_component() -> Result<(), TaskdefError> {
        let img = format!("{ECR}/team/bash-dog-api:1");
        let m = map_containers(&td(&[("web", &img)]), &example_stages(), &[], None)?;
        assert_eq!(m, vec![target("web", "api", "team/bash-dog-api", &img)]);
        Ok(())
    }

    #[test]
    fn longest_suffix_wins() -> Result<(), TaskdefError> {
        let img = format!("{ECR}/bash-dog-api-worker");
        let t = td(&[("c", &img)]);
        let m = map_containers(&t, &stages(&["worker", "api-worker"]), &[], None)?;
        assert_eq!(
            m,
            vec![target("c", "api-worker", "bash-dog-api-worker", &img)]
        );
        let m = map_containers(&t, &stages(&["worker"]), &[], None)?;
        assert_eq!(m, vec![target("c", "worker", "bash-dog-api-worker", &img)]);
        // The whole repository name counts too.
        let m = map_containers(&t, &stages(&["worker", "bash-dog-api-worker"]), &[], None)?;
        assert_eq!(
            m,
            vec![target(
                "c",
                "bash-dog-api-worker",
                "bash-dog-api-worker",
                &img
            )]
        );
        Ok(())
    }

    #[test]
    fn explicit_target_wins_over_inference() -> Result<(), TaskdefError> {
        let img = format!("{ECR}/bash-dog-api");
        let m = map_containers(
            &td(&[("api", &img)]),
            &example_stages(),
            &[("api".into(), "SIDECAR".into())],
            None,
        )?;
        assert_eq!(m, vec![target("api", "sidecar", "bash-dog-api", &img)]);
        Ok(())
    }

    #[test]
    fn explicit_target_makes_placeholder_and_hostless_images_ours() -> Result<(), TaskdefError> {
        let t = td(&[
            ("web", "<IMAGE1_NAME>"),
            ("api", "bash-dog-api:dev"),
            ("other", "<IMAGE2_NAME>"),
        ]);
        let m = map_containers(
            &t,
            &example_stages(),
            &[("web".into(), "nginx".into()), ("api".into(), "api".into())],
            None,
        )?;
        assert_eq!(
            m,
            vec![
                target("web", "nginx", "bash-dog-nginx", "<IMAGE1_NAME>"),
                target("api", "api", "bash-dog-api", "bash-dog-api:dev"),
                external("other", "<IMAGE2_NAME>"),
            ]
        );
        Ok(())
    }

    #[test]
    fn placeholder_named_like_a_stage_is_built_into_family_stage() -> Result<(), TaskdefError> {
        let t = td(&[
            ("api", "<IMAGE1_NAME>"),
            ("Nginx", "<IMAGE2_NAME>"),
            ("worker", "<IMAGE3_NAME>"),
        ]);
        let m = map_containers(&t, &example_stages(), &[], None)?;
        assert_eq!(
            m,
            vec![
                target("api", "api", "bash-dog-api", "<IMAGE1_NAME>"),
                target("Nginx", "nginx", "bash-dog-nginx", "<IMAGE2_NAME>"),
                external("worker", "<IMAGE3_NAME>"),
            ]
        );
        Ok(())
    }

    #[test]
    fn other_registries_are_external_even_when_a_stage_matches() -> Result<(), TaskdefError> {
        let images = [
            ("nginx", "nginx:1.25"),
            ("api", "public.ecr.aws/bash-dog/api:1"),
            ("sidecar", "ghcr.io/org/bash-dog-sidecar:1"),
            ("base", "quay.io/org/base"),
            ("assets", "myorg/assets"),
            ("x", "localhost:5000/bash-dog-api"),
        ];
        let m = map_containers(&td(&images), &example_stages(), &[], None)?;
        let expected: Vec<Mapping> = images.iter().map(|(c, i)| external(c, i)).collect();
        assert_eq!(m, expected);
        Ok(())
    }

    #[test]
    fn registry_override_makes_loopback_images_ours() -> Result<(), TaskdefError> {
        let t = td(&[
            ("api", "127.0.0.1:5000/bash-dog-api:latest"),
            ("web", "LOCALHOST:5000/bash-dog-nginx"),
            ("hub", "nginx"),
            ("ecr", &format!("{ECR}/bash-dog-sidecar")),
        ]);
        let m = map_containers(&t, &example_stages(), &[], Some("127.0.0.1:5000"))?;
        assert_eq!(
            m,
            vec![
                target(
                    "api",
                    "api",
                    "bash-dog-api",
                    "127.0.0.1:5000/bash-dog-api:latest"
                ),
                external("web", "LOCALHOST:5000/bash-dog-nginx"),
                external("hub", "nginx"),
                target(
                    "ecr",
                    "sidecar",
                    "bash-dog-sidecar",
                    &format!("{ECR}/bash-dog-sidecar")
                ),
            ]
        );
        let m = map_containers(&t, &example_stages(), &[], Some("localhost:5000"))?;
        assert!(matches!(&m[1], Mapping::Target { stage, .. } if stage == "nginx"));
        Ok(())
    }

    #[test]
    fn bad_registry_override_is_rejected() {
        let t = td(&[("a", "nginx")]);
        let e = map_containers(&t, &example_stages(), &[], Some("http://127.0.0.1:5000"));
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with("--registry `http://127.0.0.1:5000`:"),
            "{msg}"
        );
        assert!(msg.contains("without scheme"), "{msg}");
    }

    #[test]
    fn unmapped_container_error_lists_stages_and_fix() {
        let img = format!("{ECR}/bash-dog-worker:latest");
        let e = map_containers(&td(&[("worker", &img)]), &example_stages(), &[], None);
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg,
            format!(
                "container `worker` (image `{img}`) matches no Dockerfile stage: no stage is named like the container or like a `-`-suffix of the repository `bash-dog-worker`. Stages: base, assets, api, sidecar, nginx. Rename the stage, or pass --target worker=STAGE"
            )
        );
        let e = map_containers(&td(&[("worker", &img)]), &[], &[], None);
        assert!(
            e.err()
                .is_some_and(|e| e.to_string().contains("Stages: (none)."))
        );
    }

    #[test]
    fn explicit_target_errors_list_what_exists() -> Result<(), TaskdefError> {
        let td = TaskDef::parse(EXAMPLE_TASKDEF)?;
        let e = map_containers(
            &td,
            &example_stages(),
            &[("api".into(), "api".into())],
            None,
        );
        assert_eq!(
            e.err().map(|e| e.to_string()).as_deref(),
            Some(
                "--target api=api: taskdef.json has no container `api`; its containers are: nginx, bash-dog-api, sidecar, log-router"
            )
        );
        let e = map_containers(
            &td,
            &example_stages(),
            &[("bash-dog-api".into(), "worker".into())],
            None,
        );
        assert_eq!(
            e.err().map(|e| e.to_string()).as_deref(),
            Some(
                "--target bash-dog-api=worker: the Dockerfile has no stage `worker`; its stages are: base, assets, api, sidecar, nginx"
            )
        );
        let e = map_containers(
            &td,
            &example_stages(),
            &[
                ("nginx".into(), "nginx".into()),
                ("nginx".into(), "api".into()),
            ],
            None,
        );
        assert!(
            matches!(e, Err(TaskdefError::ConflictingTarget { .. })),
            "{e:?}"
        );
        // The same flag twice is harmless.
        let ok = map_containers(
            &td,
            &example_stages(),
            &[
                ("nginx".into(), "nginx".into()),
                ("nginx".into(), "NGINX".into()),
            ],
            None,
        );
        assert!(ok.is_ok());
        Ok(())
    }

    #[test]
    fn unnamed_stages_are_ignored() {
        let img = format!("{ECR}/bash-dog-worker");
        let e = map_containers(&td(&[("w", &img)]), &stages(&["", "api", ""]), &[], None);
        assert!(
            e.err()
                .is_some_and(|e| e.to_string().contains("Stages: api. "))
        );
        let e = map_containers(
            &td(&[("w", &img)]),
            &stages(&[""]),
            &[("w".into(), "x".into())],
            None,
        );
        assert!(
            e.err()
                .is_some_and(|e| e.to_string().ends_with("its stages are: (none)"))
        );
    }

    #[test]
    fn invalid_image_is_reported_with_container() {
        let e = map_containers(&td(&[("web", "Not Valid")]), &example_stages(), &[], None);
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with(
                "taskdef.json: container `web` has image `Not Valid`: repository path component"
            ),
            "{msg}"
        );
    }
}
