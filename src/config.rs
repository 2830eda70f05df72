//! Validated settings: the command line (flags > `STACKBAKE_*` environment >
//! defaults, resolved by clap) turned into typed values, with every usage
//! error found here, before any file, engine or network is touched.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::build::mirror::Mirror;
use crate::build::shard::Shard;
use crate::cli::{BuildArgs, BuilderFlag};
use crate::error::Error;
use crate::reference::{Host, Tag};
use crate::registry::{Credentials, Secret};

/// Environment variable holding the password for `--registry-user`.
pub(crate) const PASSWORD_ENV: &str = "STACKBAKE_REGISTRY_PASSWORD";

/// Everything `build` and `plan` need to know, validated.
pub(crate) struct Settings {
    /// Project root.
    pub dir: PathBuf,
    /// Dockerfile path (resolved against `dir`).
    pub dockerfile: PathBuf,
    /// taskdef.json path: the first `--taskdef` (the appspec's).
    pub taskdef: PathBuf,
    /// Every `--taskdef`, the first one first.
    pub taskdefs: Vec<PathBuf>,
    /// appspec.yaml path.
    pub appspec: PathBuf,
    /// `--local`.
    pub local: bool,
    /// `--registry`, a valid [`Host`] (kept as text for the pipeline).
    pub registry: Option<String>,
    /// `--registry-user` with the password from the environment.
    pub registry_credentials: Option<Credentials>,
    /// `--target CONTAINER=STAGE`.
    pub targets: Vec<(String, String)>,
    /// `--build-arg KEY=VALUE`.
    pub build_args: BTreeMap<String, String>,
    /// `--tag`, if given.
    pub tag: Option<Tag>,
    /// `--no-latest`.
    pub no_latest: bool,
    /// `--force`.
    pub force: bool,
    /// `--jobs`.
    pub jobs: usize,
    /// Whether `--jobs` was given (BuildKit's default is every ready unit).
    pub jobs_given: bool,
    /// `--create-repos`.
    pub create_repos: bool,
    /// `--mirror`s.
    pub mirrors: Vec<Mirror>,
    /// Where the artifact goes.
    pub out: PathBuf,
    /// `--fail-fast`.
    pub fail_fast: bool,
    /// `--timeout`: the longest silence tolerated from the engine or a registry.
    pub timeout: std::time::Duration,
    /// `--retries`: extra attempts for transient registry and push failures.
    pub retries: u32,
    /// `--builder`.
    pub builder: BuilderFlag,
    /// `--secret` values by id, read at startup (never printed).
    pub(crate) secrets: Arc<HashMap<String, Secret>>,
    /// `--max-age`: reusable images older than this are rebuilt.
    pub max_age: Option<std::time::Duration>,
    /// `--allow-unresolved`: an input that cannot be resolved is
    /// fingerprinted by its text (with a warning) instead of stopping the run.
    pub allow_unresolved: bool,
    /// `--shard K/N`.
    pub(crate) shard: Option<Shard>,
    /// `--env-file`.
    pub env_file: Option<PathBuf>,
}

impl Settings {
    /// Validates `build`/`plan` flags.
    pub(crate) fn from_args(a: &BuildArgs) -> Result<Settings, Error> {
        let dir = a.common.dir.clone();
        check_dir(&dir)?;
        let build_args = build_args(&a.build_args)?;
        let targets = targets(&a.targets)?;
        let tag = a.tag.as_deref().map(validate_tag).transpose()?;
        if let Some(r) = &a.registry {
            validate_registry(r)?;
        }
        let registry_credentials = registry_credentials(a)?;
        let max_age = max_age(a)?;
        let shard = shard(a)?;
        // In place by default: next to the taskdef (which `--taskdef` may
        // put in a subdirectory), so the pinned one replaces it.
        let taskdefs = taskdef_paths(&dir, &a.common.taskdef)?;
        let taskdef = taskdefs
            .first()
            .cloned()
            .unwrap_or_else(|| dir.join("taskdef.json"));
        let out = out_dir(a, &dir, &taskdef);
        let secrets = Arc::new(load_secrets(&a.secrets, &dir)?);
        Ok(Settings {
            builder: a.builder,
            secrets,
            dockerfile: dir.join(&a.common.dockerfile),
            taskdef,
            taskdefs,
            appspec: dir.join(&a.common.appspec),
            dir,
            local: a.local,
            registry: a.registry.clone(),
            registry_credentials,
            targets,
            build_args,
            tag,
            no_latest: a.no_latest,
            force: a.force,
            jobs: jobs(a),
            jobs_given: a.jobs.is_some(),
            create_repos: a.create_repos,
            mirrors: mirrors(a)?,
            out,
            fail_fast: a.fail_fast,
            timeout: std::time::Duration::from_secs(a.timeout.get()),
            retries: a.retries.min(20),
            max_age,
            allow_unresolved: a.allow_unresolved,
            shard,
            env_file: a.env_file.clone(),
        })
    }
}

/// `--dir` must be a directory.
fn check_dir(dir: &Path) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--dir {}: not a directory. Pass the project root that holds the Dockerfile and taskdef.json",
            dir.display()
        )));
    }
    Ok(())
}

/// `--build-arg KEY=VALUE` (or `KEY`, valued from the environment) flags.
fn build_args(flags: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut build_args = BTreeMap::new();
    for kv in flags {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            // As docker: `--build-arg KEY` takes the value from the environment.
            None => match std::env::var(kv) {
                Ok(v) => (kv.clone(), v),
                Err(_) => {
                    return Err(Error::Usage(format!(
                        "--build-arg {kv}: expected KEY=VALUE (or KEY with KEY set in the environment)"
                    )));
                }
            },
        };
        if k.is_empty() {
            return Err(Error::Usage(format!("--build-arg {kv}: the name is empty")));
        }
        build_args.insert(k, v);
    }
    Ok(build_args)
}

/// `--target CONTAINER=STAGE` flags, the stage lowercased.
fn targets(flags: &[String]) -> Result<Vec<(String, String)>, Error> {
    let mut targets = Vec::new();
    for t in flags {
        match t.split_once('=') {
            Some((c, s)) if !c.trim().is_empty() && !s.trim().is_empty() => {
                targets.push((c.trim().to_string(), s.trim().to_lowercase()));
            }
            _ => {
                return Err(Error::Usage(format!(
                    "--target {t}: expected CONTAINER=STAGE, e.g. --target bash-dog-api=api"
                )));
            }
        }
    }
    Ok(targets)
}

/// `--registry-user` with the password from [`PASSWORD_ENV`]; it needs
/// `--registry`.
fn registry_credentials(a: &BuildArgs) -> Result<Option<Credentials>, Error> {
    let registry_credentials = match (&a.registry_user, std::env::var(PASSWORD_ENV)) {
        (Some(user), Ok(pass)) => Some(Credentials {
            username: user.clone(),
            password: Secret::new(pass),
        }),
        (Some(_), Err(_)) => {
            return Err(Error::Usage(format!(
                "--registry-user is set but {PASSWORD_ENV} is not: export the registry password in {PASSWORD_ENV}"
            )));
        }
        (None, _) => None,
    };
    if registry_credentials.is_some() && a.registry.is_none() {
        return Err(Error::Usage(
            "--registry-user needs --registry HOST[:PORT]".to_string(),
        ));
    }
    Ok(registry_credentials)
}

/// `--max-age`, parsed.
fn max_age(a: &BuildArgs) -> Result<Option<std::time::Duration>, Error> {
    a.max_age
        .as_deref()
        .map(crate::build::expiry::parse_duration)
        .transpose()
        .map_err(|e| Error::Usage(format!("--max-age: {e}")))
}

/// `--jobs`, or the machine's parallelism (2 when unknown).
fn jobs(a: &BuildArgs) -> usize {
    a.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
        std::num::NonZeroUsize::get,
    )
}

/// `--out`, else `DIR/stackbake-out` with `--local`, else the taskdef's
/// directory.
fn out_dir(a: &BuildArgs, dir: &Path, taskdef: &Path) -> PathBuf {
    match &a.out {
        Some(o) => o.clone(),
        None if a.local => dir.join("stackbake-out"),
        None => taskdef
            .parent()
            .map_or_else(|| dir.to_path_buf(), Path::to_path_buf),
    }
}

/// The `--mirror` flags, parsed (blank ones skipped).
fn mirrors(a: &BuildArgs) -> Result<Vec<Mirror>, Error> {
    a.mirrors
        .iter()
        .filter(|m| !m.trim().is_empty())
        .map(|m| Mirror::parse(m).map_err(|e| Error::Usage(e.to_string())))
        .collect()
}

/// `--shard K/N`, which needs a registry to hand images to the assemble step.
fn shard(a: &BuildArgs) -> Result<Option<Shard>, Error> {
    let Some(value) = a.shard.as_deref() else {
        return Ok(None);
    };
    let shard = value
        .parse::<Shard>()
        .map_err(|e| Error::Usage(format!("--shard {e}")))?;
    if a.local && a.registry.is_none() {
        return Err(Error::Usage(
            "--shard needs a registry: shards hand their images to the assemble step through it. Pass --registry HOST[:PORT] (or drop --local to use ECR)".to_string(),
        ));
    }
    Ok(Some(shard))
}

/// The `--taskdef` paths resolved against `dir`; two with one file name are
/// an error (each keeps its file name in the artifact, so one would
/// overwrite the other).
fn taskdef_paths(dir: &Path, given: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for t in given {
        let path = dir.join(t);
        if paths.contains(&path) {
            continue;
        }
        if let Some(other) = paths
            .iter()
            .find(|p| p.file_name().is_some() && p.file_name() == path.file_name())
        {
            return Err(Error::Usage(format!(
                "--taskdef {} and --taskdef {} have the same file name: each task definition keeps its file name in the artifact, so one would overwrite the other. Rename one (e.g. taskdef.staging.json, taskdef.prod.json)",
                other.display(),
                path.display()
            )));
        }
        paths.push(path);
    }
    if paths.is_empty() {
        paths.push(dir.join("taskdef.json"));
    }
    Ok(paths)
}

/// `--tag` as an image tag; the error names the flag.
pub(crate) fn validate_tag(tag: &str) -> Result<Tag, Error> {
    tag_from("--tag", tag)
}

/// `tag` as an image tag; the error names `source`, where it came from.
fn tag_from(source: &str, tag: &str) -> Result<Tag, Error> {
    Tag::parse(tag).map_err(|e| Error::Usage(format!("{source}: {e}")))
}

/// `--registry` as a registry host; the error names the flag.
fn validate_registry(r: &str) -> Result<Host, Error> {
    Host::parse(r).map_err(|e| Error::Usage(format!("--registry {r:?}: {e} (e.g. 127.0.0.1:5000)")))
}

/// The commit tag: `--tag`, else the first 7 characters of
/// `CODEBUILD_RESOLVED_SOURCE_VERSION`, else of `git rev-parse HEAD` in `dir`.
pub(crate) fn commit_tag(s: &Settings) -> Result<String, Error> {
    if let Some(t) = &s.tag {
        return Ok(t.to_string());
    }
    if let Ok(v) = std::env::var("CODEBUILD_RESOLVED_SOURCE_VERSION") {
        let v = v.trim();
        if !v.is_empty() {
            let t: String = v.chars().take(7).collect();
            tag_from("CODEBUILD_RESOLVED_SOURCE_VERSION", &t)?;
            return Ok(t);
        }
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&s.dir)
        .args(["rev-parse", "HEAD"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let t: String = String::from_utf8_lossy(&o.stdout)
                .trim()
                .chars()
                .take(7)
                .collect();
            tag_from("the commit from `git rev-parse HEAD`", &t)?;
            Ok(t)
        }
        _ => Err(Error::Usage(format!(
            "cannot tell the commit: --tag is not set, CODEBUILD_RESOLVED_SOURCE_VERSION is not set, and {} is not a git checkout with a commit. Pass --tag TAG",
            s.dir.display()
        ))),
    }
}

/// Where a `--secret` value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretSource {
    /// A file (relative paths against the project directory).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// Parses one `--secret id=ID[,src=PATH|,env=VAR]` (as docker buildx:
/// `source=` for `src=`, `type=file|env` to say which; with neither, the
/// variable named like the id).
fn parse_secret(spec: &str) -> Result<(String, SecretSource), Error> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "--secret {spec}: {why}; expected id=ID[,src=PATH|,env=VARIABLE], e.g. --secret id=npmrc,src=$HOME/.npmrc"
        ))
    };
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| bad(&format!("`{field}` is not KEY=VALUE")))?;
        let v = v.trim();
        if v.is_empty() {
            return Err(bad(&format!("`{}` is empty", k.trim())));
        }
        match k.trim() {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            "type" if matches!(v, "file" | "env") => kind = Some(v.to_string()),
            other => return Err(bad(&format!("unknown key `{other}`"))),
        }
    }
    let id = id.ok_or_else(|| bad("the id is missing"))?;
    let source = match (src, env, kind.as_deref()) {
        (Some(_), Some(_), _) => return Err(bad("give either src= or env=, not both")),
        (Some(p), None, None | Some("file")) => SecretSource::File(PathBuf::from(p)),
        (Some(v), None, Some(_)) | (None, Some(v), _) => SecretSource::Env(v),
        (None, None, Some("file")) => SecretSource::File(PathBuf::from(&id)),
        (None, None, _) => SecretSource::Env(id.clone()),
    };
    Ok((id, source))
}

/// Reads every `--secret` now, so that a missing file or variable stops
/// the run before anything is built. Messages name the id and where the
/// value was to come from, never the value.
fn load_secrets(specs: &[String], dir: &Path) -> Result<HashMap<String, Secret>, Error> {
    let mut out = HashMap::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let (id, source) = parse_secret(spec.trim())?;
        let value = match &source {
            SecretSource::File(p) => {
                let path = if p.is_absolute() {
                    p.clone()
                } else {
                    dir.join(p)
                };
                let bytes = std::fs::read(&path).map_err(|e| {
                    Error::Usage(format!(
                        "--secret id={id}: cannot read its file {}: {e}",
                        path.display()
                    ))
                })?;
                String::from_utf8(bytes).map_err(|_| {
                    Error::Usage(format!(
                        "--secret id={id}: {} is not UTF-8 text; stackbake passes text secrets only",
                        path.display()
                    ))
                })?
            }
            SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                Error::Usage(format!(
                    "--secret id={id}: the environment variable {var} is not set (or not UTF-8)"
                ))
            })?,
        };
        if out.insert(id.clone(), Secret::new(value)).is_some() {
            return Err(Error::Usage(format!(
                "--secret id={id} is given twice; give each id once"
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings_in(dir: &Path, args: &[&str]) -> Settings {
        let d = dir.to_string_lossy().to_string();
        let mut argv = vec!["stackbake", "build", "--dir", d.as_str()];
        argv.extend_from_slice(args);
        let cli = crate::cli::Cli::try_parse_from(argv).expect("parse");
        let crate::cli::Command::Build(b) = cli.command else {
            panic!("not a build command")
        };
        Settings::from_args(&b).expect("settings")
    }

    fn build_settings(args: &[&str]) -> Settings {
        let dir = tempfile::tempdir().expect("tempdir");
        settings_in(dir.path(), args)
    }

    #[test]
    fn the_default_out_is_next_to_the_taskdef() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        assert_eq!(settings_in(d, &[]).out, d);
        assert_eq!(
            settings_in(d, &["--taskdef", "deploy/taskdef.prod.json"]).out,
            d.join("deploy")
        );
        assert_eq!(settings_in(d, &["--local"]).out, d.join("stackbake-out"));
        assert_eq!(
            settings_in(d, &["--taskdef", "deploy/t.json", "--out", "/x"]).out,
            Path::new("/x")
        );
    }

    #[test]
    fn build_arg_values_keep_their_commas() {
        let s = build_settings(&[
            "--local",
            "--build-arg",
            "ALLOWED_HOSTS=a.example.com,b.example.com",
            "--build-arg",
            "JAVA_OPTS=-Xmx1g,-Dx=y",
        ]);
        assert_eq!(
            s.build_args.get("ALLOWED_HOSTS").map(String::as_str),
            Some("a.example.com,b.example.com")
        );
        assert_eq!(
            s.build_args.get("JAVA_OPTS").map(String::as_str),
            Some("-Xmx1g,-Dx=y")
        );
        assert_eq!(s.build_args.len(), 2);
    }

    #[test]
    fn max_age_takes_the_issue_s_units_and_names_itself_when_wrong() {
        let s = build_settings(&["--local", "--max-age", "12h"]);
        assert_eq!(s.max_age, Some(std::time::Duration::from_secs(43_200)));
        assert_eq!(build_settings(&["--local"]).max_age, None);
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_string_lossy().to_string();
        let argv = [
            "stackbake",
            "build",
            "--dir",
            d.as_str(),
            "--max-age",
            "soon",
        ];
        let cli = crate::cli::Cli::try_parse_from(argv).expect("parse");
        let crate::cli::Command::Build(b) = cli.command else {
            panic!("not a build command")
        };
        let e = Settings::from_args(&b)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("--max-age: ") && e.contains("7d"), "{e}");
    }

    #[test]
    fn tags_follow_docker_grammar() {
        assert!(validate_tag("abc1234").is_ok());
        assert!(validate_tag("v1.2_3-x").is_ok());
        assert!(validate_tag("").is_err());
        assert!(validate_tag(".x").is_err());
        assert!(validate_tag("-x").is_err());
        assert!(validate_tag("a/b").is_err());
        assert!(validate_tag(&"a".repeat(129)).is_err());
    }

    #[test]
    fn registries_are_host_and_port_only() {
        assert!(validate_registry("127.0.0.1:5000").is_ok());
        assert!(validate_registry("123456789012.dkr.ecr.us-east-2.amazonaws.com").is_ok());
        assert!(validate_registry("http://x").is_err());
        assert!(validate_registry("x/y").is_err());
        assert!(validate_registry("").is_err());
        // The grammar's host names have no `_` (Docker refuses them too).
        assert!(validate_registry("my_registry:5000").is_err());
        assert!(validate_registry("::1").is_ok());
    }

    #[test]
    fn flag_errors_name_the_flag_and_what_is_allowed() {
        let m = validate_tag(".x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            m.starts_with("--tag: ") && m.contains("not starting with `.`"),
            "{m}"
        );
        let m = validate_registry("x:0")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            m.starts_with("--registry \"x:0\": ") && m.contains("1 to 65535"),
            "{m}"
        );
    }

    #[test]
    fn secrets_are_read_at_startup_and_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("tok.txt"), "s3cret-value").expect("write");
        let s = settings_in(dir.path(), &["--secret", "id=tok,src=tok.txt"]);
        assert_eq!(
            s.secrets.get("tok").map(Secret::expose),
            Some("s3cret-value")
        );
        assert_eq!(format!("{:?}", s.secrets.get("tok")), "Some(<redacted>)");
        for (spec, needle) in [
            ("id=tok,src=missing.txt", "cannot read its file"),
            ("src=tok.txt", "the id is missing"),
            ("id=tok,src=tok.txt,env=X", "not both"),
            ("id=tok,bogus=1", "unknown key `bogus`"),
            (
                "id=x,env=STACKBAKE_TEST_SURELY_UNSET_VAR",
                "STACKBAKE_TEST_SURELY_UNSET_VAR is not set",
            ),
            ("nonsense", "not KEY=VALUE"),
        ] {
            let d = dir.path().to_string_lossy().to_string();
            let cli = crate::cli::Cli::try_parse_from([
                "stackbake",
                "build",
                "--dir",
                d.as_str(),
                "--secret",
                spec,
            ])
            .expect("parse");
            let crate::cli::Command::Build(b) = cli.command else {
                panic!("not a build command")
            };
            let err = Settings::from_args(&b).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains(needle), "{spec}: {err}");
            assert!(!err.contains("s3cret-value"), "{err}");
        }
    }
}
