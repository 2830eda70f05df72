//! Issue 3: ECR mode (no `--local`) against moto and a registry that demands
//! moto's ECR token — the full build with `--create-repos`, missing
//! repositories, a missing region, a registry refusing the credentials, and
//! the registry password never leaving memory. Registry and moto state are
//! read with curl, never with our code.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{
    ECR_PASSWORD, ECR_USER, Fixture, Moto, Project, Registry, Sb, files_under, is_sha256,
    report_target,
};

/// (container, repository) of the example's three targets.
const TARGETS: [(&str, &str); 3] = [
    ("nginx", "bash-dog-nginx"),
    ("bash-dog-api", "bash-dog-api"),
    ("sidecar", "bash-dog-sidecar"),
];

/// base64 of `AWS:123456789012-auth-token`, the token as ECR hands it out.
const ECR_TOKEN_B64: &str = "QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu";

/// The region of the example's image URIs (and of `Moto::env`).
const REGION: &str = "us-east-2";

/// `stackbake build` in ECR mode (no `--local`): `--dir ROOT --out OUT
/// --registry ADDR --build-arg BASE=… --tag TAG --progress plain`, with the
/// environment pointing the AWS SDK at `moto`.
fn ecr_build(fx: &Fixture, moto: &Moto) -> Sb {
    ecr_build_with(fx, moto, "plain")
}

/// [`ecr_build`] with another `--progress`.
fn ecr_build_with(fx: &Fixture, moto: &Moto, progress: &str) -> Sb {
    Sb::new()
        .args(["build", "--dir"])
        .arg(fx.project.root())
        .arg("--out")
        .arg(fx.project.out())
        .args(["--registry", fx.registry().addr()])
        .arg("--build-arg")
        .arg(format!("BASE={}", fx.base_ref()))
        .args(["--tag", &fx.tag, "--progress", progress])
        .envs(moto.env())
}

/// Calls ECR `operation` on moto in `region` (moto checks no signature,
/// but takes the region from the credential scope) and returns the JSON.
fn moto_ecr(moto: &Moto, region: &str, operation: &str, body: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-X", "POST", moto.endpoint()])
        .args([
            "-H",
            &format!("X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.{operation}"),
            "-H",
            "Content-Type: application/x-amz-json-1.1",
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/ecr/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
            "-d",
            body,
        ])
        .output()
        .expect("curl not found");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl to moto failed: {text}");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("moto's {operation} answer is not JSON ({e}): {text}"))
}

/// The ECR repositories moto holds in `region`, by name.
fn moto_repositories(moto: &Moto, region: &str) -> Vec<Value> {
    let answer = moto_ecr(moto, region, "DescribeRepositories", "{}");
    answer["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("DescribeRepositories: {answer:#}"))
        .clone()
}

fn moto_repository_names(moto: &Moto, region: &str) -> Vec<String> {
    let mut names: Vec<String> = moto_repositories(moto, region)
        .iter()
        .filter_map(|r| r["repositoryName"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Panics unless `dir` holds no file (a failed run writes no artifact).
fn assert_no_artifact(dir: &Path) {
    let files = Project::files_in(dir);
    assert!(
        files.is_empty(),
        "a failed run wrote {files:?} into {}",
        dir.display()
    );
}

/// Panics if the registry password (raw or as the base64 token) is in `text`.
fn assert_no_secret(text: &str, what: &str) {
    for secret in [ECR_PASSWORD, ECR_TOKEN_B64] {
        assert!(
            !text.contains(secret),
            "{what} contains the registry secret {secret:?}:\n{text}"
        );
    }
}

/// Panics if any file under `dir` contains the registry password.
fn assert_no_secret_under(dir: &Path) {
    for file in files_under(dir) {
        let bytes = fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert_no_secret(&text, &file.display().to_string());
    }
}

#[test]
fn ecr_build_creates_repos_pushes_and_pins() {
    let moto = Moto::start();
    let fx = Fixture::with_auth_registry(ECR_USER, ECR_PASSWORD);
    let registry = fx.registry();
    assert!(moto_repository_names(&moto, REGION).is_empty());

    let run = ecr_build(&fx, &moto)
        .args(["--create-repos", "--json"])
        .run();
    run.assert_success();
    let report = run.json();
    assert_eq!(
        Project::json_in(fx.project.out(), "stackbake-report.json"),
        report
    );
    assert_eq!(report["registry"], registry.addr(), "{report:#}");
    assert_eq!(report["commit_tag"], fx.tag.as_str(), "{report:#}");
    assert_eq!(
        report["targets"].as_array().map(Vec::len),
        Some(3),
        "{report:#}"
    );

    let taskdef = Project::json_in(fx.project.out(), "taskdef.json");
    for (container, repo) in TARGETS {
        let t = report_target(&report, container);
        assert_eq!(t["action"], "built", "{t:#}");
        assert_eq!(t["repository"], repo, "{t:#}");
        let digest = t["digest"].as_str().expect("digest").to_owned();
        assert!(is_sha256(&digest), "{t:#}");
        let image = format!("{}/{repo}@{digest}", registry.addr());
        assert_eq!(t["image"], image.as_str(), "{t:#}");
        // The registry's own digests (curl with the ECR token as basic auth).
        assert_eq!(
            registry.digest(repo, &fx.tag).as_deref(),
            Some(digest.as_str()),
            "{repo}:{} in the registry",
            fx.tag
        );
        assert_eq!(
            registry.digest(repo, "latest").as_deref(),
            Some(digest.as_str()),
            "{repo}:latest must be a manifest copy of the commit tag"
        );
        let pinned = taskdef["containerDefinitions"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c["name"] == container)
            .map(|c| c["image"].clone());
        assert_eq!(pinned, Some(Value::from(image)), "taskdef.json {container}");
    }

    // --create-repos created the three repositories in moto, in the region
    // of the image URIs, with scan on push and tags immutable except
    // `latest` and `buildcache`.
    assert_eq!(
        moto_repository_names(&moto, REGION),
        ["bash-dog-api", "bash-dog-nginx", "bash-dog-sidecar"]
    );
    for repo in moto_repositories(&moto, REGION) {
        assert_eq!(
            repo["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION",
            "{repo:#}"
        );
        let filters: Vec<&str> = repo["imageTagMutabilityExclusionFilters"]
            .as_array()
            .map(|l| l.iter().filter_map(|f| f["filter"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(filters, ["latest", "buildcache"], "{repo:#}");
        assert_eq!(
            repo["imageScanningConfiguration"]["scanOnPush"], true,
            "{repo:#}"
        );
    }
}

#[test]
fn missing_repositories_are_named_and_nothing_is_pushed() {
    let moto = Moto::start();
    let fx = Fixture::with_auth_registry(ECR_USER, ECR_PASSWORD);
    let run = ecr_build(&fx, &moto).run();
    run.assert_code(3).assert_stderr_mentions("--create-repos");
    for (_, repo) in TARGETS {
        run.assert_stderr_mentions(repo);
        assert!(
            fx.registry().tags(repo).is_empty(),
            "{repo} was pushed although it is missing in ECR:\n{run}"
        );
    }
    assert_no_artifact(fx.project.out());
    assert!(
        moto_repository_names(&moto, REGION).is_empty(),
        "repositories created without --create-repos"
    );

    // With two of three present, the error is about the third one.
    for repo in ["bash-dog-api", "bash-dog-nginx"] {
        moto_ecr(
            &moto,
            REGION,
            "CreateRepository",
            &format!("{{\"repositoryName\": \"{repo}\"}}"),
        );
    }
    let run = ecr_build(&fx, &moto).run();
    run.assert_code(3)
        .assert_stderr_mentions("bash-dog-sidecar")
        .assert_stderr_mentions("--create-repos");
    let error_lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("bash-dog-sidecar"))
        .collect();
    assert!(
        error_lines
            .iter()
            .all(|l| !l.contains("bash-dog-api") && !l.contains("bash-dog-nginx")),
        "the error names repositories that exist:\n{run}"
    );
    assert_no_artifact(fx.project.out());
}

#[test]
fn region_comes_from_the_image_uris_when_the_environment_has_none() {
    let moto = Moto::start();
    let fx = Fixture::with_auth_registry(ECR_USER, ECR_PASSWORD);
    let home = tempfile::tempdir().expect("temp HOME");
    // No AWS_REGION / AWS_DEFAULT_REGION, no ~/.aws/config: the example's
    // image URIs name us-east-2, which is where the repositories must land.
    let run = ecr_build(&fx, &moto)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("HOME", home.path())
        .args(["--create-repos", "--json"])
        .run();
    run.assert_success();
    assert_eq!(
        moto_repository_names(&moto, REGION),
        ["bash-dog-api", "bash-dog-nginx", "bash-dog-sidecar"],
        "repositories not created in the image URIs' region:\n{run}"
    );
}

#[test]
fn no_region_anywhere_says_how_to_set_it() {
    let moto = Moto::start();
    let fx = Fixture::with_auth_registry(ECR_USER, ECR_PASSWORD);
    let home = tempfile::tempdir().expect("temp HOME");
    // The images name the registry directly (a taskdef written for
    // `--registry`): no ECR URI, so no region hint either.
    let ecr_host = format!("123456789012.dkr.ecr.{REGION}.amazonaws.com");
    fx.project.edit("taskdef.json", |text| {
        assert_eq!(
            text.matches(&ecr_host).count(),
            3,
            "example taskdef changed"
        );
        text.replace(&ecr_host, fx.registry().addr())
    });
    let run = ecr_build(&fx, &moto)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("HOME", home.path())
        .arg("--create-repos")
        .run();
    run.assert_code(3).assert_stderr_mentions("AWS_REGION");
    assert!(
        run.stderr.to_lowercase().contains("region"),
        "stderr does not talk about the region:\n{run}"
    );
    assert!(
        !run.stderr.contains("dispatch failure"),
        "the SDK's bare error leaked instead of a hint:\n{run}"
    );
    assert_no_artifact(fx.project.out());
    for (_, repo) in TARGETS {
        assert!(fx.registry().tags(repo).is_empty(), "{repo} pushed:\n{run}");
    }
    // Same inputs with AWS_REGION set: the region step passes.
    let run = ecr_build(&fx, &moto).arg("--create-repos").run();
    run.assert_success();
}

#[test]
fn registry_refusing_the_token_is_an_environment_error() {
    let moto = Moto::start();
    // The registry wants another password than the one ECR hands out.
    let fx = Fixture::with_auth_registry(ECR_USER, "not-the-ecr-token");
    let home = tempfile::tempdir().expect("temp HOME");
    let run = ecr_build(&fx, &moto)
        .env("HOME", home.path())
        .args(["--create-repos", "--verbose"])
        .run();
    run.assert_code(3)
        .assert_stderr_mentions(fx.registry().addr());
    assert_no_artifact(fx.project.out());
    // An error path must not print the credentials it was refused with.
    assert_no_secret(&run.stdout, "stdout");
    assert_no_secret(&run.stderr, "stderr");
    assert_no_secret_under(home.path());
}

#[test]
fn the_registry_password_never_leaves_memory() {
    let moto = Moto::start();
    let fx = Fixture::with_auth_registry(ECR_USER, ECR_PASSWORD);
    let home = tempfile::tempdir().expect("temp HOME");
    for (round, (progress, extra)) in [
        ("plain", &["--create-repos", "--verbose", "--json"][..]),
        ("tty", &["--verbose"][..]),
        ("quiet", &[][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let run = ecr_build_with(&fx, &moto, progress)
            .env("HOME", home.path())
            .args(extra)
            .run();
        run.assert_success();
        if round == 0 {
            assert!(
                run.stderr.lines().count() > 3,
                "--verbose printed almost nothing; the check would prove little:\n{run}"
            );
        }
        assert_no_secret(&run.stdout, &format!("stdout of {}", run.command));
        assert_no_secret(&run.stderr, &format!("stderr of {}", run.command));
        if progress == "quiet" {
            // Quiet still ends with the summary: what each container got.
            for repo in ["bash-dog-api", "bash-dog-sidecar", "bash-dog-nginx"] {
                assert!(
                    run.stderr.contains(&format!("/{repo}@sha256:")),
                    "no summary line for {repo}:\n{run}"
                );
            }
        }
        assert_eq!(
            files_under(fx.project.out()).len(),
            5,
            "the artifact files:\n{run}"
        );
        assert_no_secret_under(fx.project.out());
        assert_no_secret_under(fx.project.root());
        assert_no_secret_under(home.path());
        assert!(
            !home.path().join(".docker").exists(),
            "the run created $HOME/.docker: {:?}",
            files_under(&home.path().join(".docker"))
        );
    }
}

#[test]
fn moto_ecr_helper_reads_repositories_per_region() {
    let moto = Moto::start();
    moto_ecr(
        &moto,
        "eu-west-1",
        "CreateRepository",
        "{\"repositoryName\": \"probe\"}",
    );
    assert_eq!(moto_repository_names(&moto, "eu-west-1"), ["probe"]);
    assert!(moto_repository_names(&moto, REGION).is_empty());
    // The refusing registry really refuses the token (so the test above
    // tests stackbake, not the fixture).
    let refusing = Registry::start_with_auth(ECR_USER, "not-the-ecr-token");
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
        .arg(format!("{ECR_USER}:{ECR_PASSWORD}"))
        .arg(format!("http://{}/v2/", refusing.addr()))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "401");
}

/// Every diagnostic on: `STACKBAKE_LOG` as a whole filter at `trace` turns
/// on every level of stackbake and of every library it links (AWS SDK,
/// HTTP, TLS, the engine client). Not one byte of the registry password
/// or the ECR token may reach the output, in any progress mode.
#[test]
fn every_diagnostic_level_on_leaks_no_password_or_token() {
    let moto = Moto::start();
    let fx = Fixture::with_auth_registry(ECR_USER, ECR_PASSWORD);
    let home = tempfile::tempdir().expect("temp HOME");
    // Each run forces a rebuild under the same commit tag, and BuildKit's
    // rebuild is a new image: the repositories must let the tag move (the
    // ones --create-repos makes would rightly refuse it).
    for repo in ["bash-dog-api", "bash-dog-sidecar", "bash-dog-nginx"] {
        let body = format!(r#"{{"repositoryName":"{repo}","imageTagMutability":"MUTABLE"}}"#);
        moto_ecr(&moto, "us-east-2", "CreateRepository", &body);
    }
    for (progress, filter) in [
        ("plain", "trace"),
        ("plain", "trace,stackbake=trace"),
        ("quiet", "trace,stackbake=trace"),
        (
            "plain",
            "aws_smithy_runtime=trace,hyper=trace,reqwest=trace,stackbake=trace",
        ),
    ] {
        let run = ecr_build_with(&fx, &moto, progress)
            .env("HOME", home.path())
            .env("STACKBAKE_LOG", filter)
            .args(["--create-repos", "--verbose", "--json", "--force"])
            .run();
        run.assert_success();
        // The diagnostics really were on: spans per unit, with timings.
        assert!(
            run.stderr.contains("unit{target=api}") && run.stderr.contains("time.busy"),
            "STACKBAKE_LOG={filter} printed no unit spans:\n{run}"
        );
        assert_no_secret(&run.stdout, &format!("stdout with STACKBAKE_LOG={filter}"));
        assert_no_secret(&run.stderr, &format!("stderr with STACKBAKE_LOG={filter}"));
        assert_no_secret_under(fx.project.out());
        assert_no_secret_under(home.path());
    }
}
