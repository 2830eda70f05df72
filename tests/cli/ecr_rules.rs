//! Issue 13: ECR as it is, against real peers: moto's repositories created
//! IMMUTABLE or IMMUTABLE_WITH_EXCLUSION, a registry behind [`EcrFront`]
//! that refuses what ECR refuses (an existing immutable tag, one tag too
//! many), a pull-through mirror served by a loopback registry, and the IAM
//! policy `init` writes held against every call a build actually made.

use std::collections::BTreeSet;
use std::process::Command;

use crate::ecr_front::{AwsRecorder, EcrFront};
use crate::harness::{Fixture, Moto, Registry, Sb, docker, docker_ok, unique_id};

const ECR_USER: &str = "AWS";
const ECR_PASSWORD: &str = "123456789012-auth-token";
const REPOS: [&str; 3] = ["bash-dog-api", "bash-dog-sidecar", "bash-dog-nginx"];

/// Creates `repo` in moto with `mutability` (and WILDCARD exclusions).
fn moto_create(endpoint: &str, repo: &str, mutability: &str, except: &[&str]) {
    let filters: Vec<String> = except
        .iter()
        .map(|f| format!(r#"{{"filterType":"WILDCARD","filter":"{f}"}}"#))
        .collect();
    let exclusions = if filters.is_empty() {
        String::new()
    } else {
        format!(
            r#","imageTagMutabilityExclusionFilters":[{}]"#,
            filters.join(",")
        )
    };
    let body =
        format!(r#"{{"repositoryName":"{repo}","imageTagMutability":"{mutability}"{exclusions}}}"#);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-X", "POST", endpoint])
        .args([
            "-H",
            "X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.CreateRepository",
            "-H",
            "Content-Type: application/x-amz-json-1.1",
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-2/ecr/aws4_request, SignedHeaders=host, Signature=0",
            "-d",
            &body,
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("repositoryArn"),
        "CreateRepository {repo}: {text}"
    );
}

/// `stackbake build` in ECR mode against moto (through `aws`), pushing
/// through `front`.
fn ecr_build(fx: &Fixture, aws: &str, front: &EcrFront, tag: &str) -> Sb {
    Sb::new()
        .args(["build", "--dir"])
        .arg(fx.project.root())
        .arg("--out")
        .arg(fx.project.out())
        .args(["--registry", front.addr()])
        .arg("--build-arg")
        .arg(format!("BASE={}", fx.base_ref()))
        .args(["--tag", tag, "--progress", "plain", "--json"])
        .envs([
            ("AWS_ENDPOINT_URL".to_string(), aws.to_string()),
            ("AWS_ACCESS_KEY_ID".to_string(), "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "testing".to_string()),
            ("AWS_REGION".to_string(), "us-east-2".to_string()),
        ])
}

/// (repository, digest, tags) of each target of a `--json` report.
fn pins(run: &crate::harness::Outcome) -> Vec<(String, String, Vec<String>)> {
    run.json()["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| {
            (
                t["repository"].as_str().unwrap_or_default().to_string(),
                t["digest"].as_str().unwrap_or_default().to_string(),
                t["tags"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

struct Ecr {
    fx: Fixture,
    moto: Moto,
    front: EcrFront,
}

fn ecr() -> Ecr {
    let moto = Moto::start();
    let mut fx = Fixture::with_auth_registry(ECR_USER, ECR_PASSWORD);
    let front = EcrFront::start(fx.registry().addr());
    fx.images.watch_registry(front.addr());
    Ecr { fx, moto, front }
}

#[test]
fn immutable_repositories_never_see_an_overwrite_and_every_build_succeeds() {
    let e = ecr();
    let moto = e.moto.endpoint().to_string();
    moto_create(&moto, "bash-dog-api", "IMMUTABLE", &[]);
    moto_create(
        &moto,
        "bash-dog-sidecar",
        "IMMUTABLE_WITH_EXCLUSION",
        &["latest"],
    );
    moto_create(
        &moto,
        "bash-dog-nginx",
        "IMMUTABLE_WITH_EXCLUSION",
        &["latest", "buildcache"],
    );
    e.front.immutable("bash-dog-api", &[]);
    e.front.immutable("bash-dog-sidecar", &["latest"]);
    e.front
        .immutable("bash-dog-nginx", &["latest", "buildcache"]);
    let (t1, t2, t3) = (unique_id(), unique_id(), unique_id());
    let registry = e.fx.registry();

    let cold = ecr_build(&e.fx, &moto, &e.front, &t1).run();
    cold.assert_success();
    for (repo, digest, _) in pins(&cold) {
        assert_eq!(
            registry.digest(&repo, &t1).as_deref(),
            Some(digest.as_str()),
            "{cold}"
        );
    }
    // A new commit, nothing changed: every target reused.
    let next = ecr_build(&e.fx, &moto, &e.front, &t2).run();
    next.assert_success();
    // CodeBuild retries the same commit.
    let retry = ecr_build(&e.fx, &moto, &e.front, &t2).run();
    retry.assert_success();
    assert_eq!(pins(&retry), pins(&next));
    // One file changed: api is rebuilt; its `latest` (immutable) stays
    // where it is, with one line saying why; sidecar and nginx are reused.
    e.fx.project
        .write("app/api/index.json", "{\"changed\": 3}\n");
    let changed = ecr_build(&e.fx, &moto, &e.front, &t3).run();
    changed.assert_success();
    let before = pins(&cold);
    for (repo, digest, tags) in pins(&changed) {
        assert_eq!(
            registry.digest(&repo, &t3).as_deref(),
            Some(digest.as_str()),
            "{changed}"
        );
        let old = before
            .iter()
            .find(|(r, ..)| *r == repo)
            .map(|(_, d, _)| d.clone());
        if repo == "bash-dog-api" {
            assert_ne!(Some(&digest), old.as_ref(), "api rebuilt");
            assert_eq!(
                tags,
                std::slice::from_ref(&t3),
                "latest stays on the old api image"
            );
            assert_eq!(registry.digest(&repo, "latest"), old, "latest did not move");
        } else {
            assert_eq!(Some(&digest), old.as_ref(), "{repo} reused");
        }
    }
    assert!(
        changed
            .stderr
            .contains("bash-dog-api:latest stays at sha256:"),
        "{changed}"
    );
    assert_eq!(
        e.front.overwrite_attempts(),
        0,
        "PUTs the repository refused"
    );
}

#[test]
fn an_immutable_commit_tag_naming_another_image_is_exit_3_and_says_how_out() {
    let e = ecr();
    let moto = e.moto.endpoint().to_string();
    for r in REPOS {
        moto_create(&moto, r, "IMMUTABLE_WITH_EXCLUSION", &["latest"]);
        e.front.immutable(r, &["latest"]);
    }
    let tag = unique_id();
    ecr_build(&e.fx, &moto, &e.front, &tag)
        .run()
        .assert_success();
    // A retry of the same commit reuses what it pushed: success.
    let retry = ecr_build(&e.fx, &moto, &e.front, &tag).run();
    retry.assert_success();
    // --force on the same commit: a rebuild that is a new image (a step not
    // answered from the cache gets a new creation time) cannot take the
    // commit tag, and the targets that differ are named with the way out.
    // Which targets come out byte-identical depends on BuildKit's cache (a
    // rebuild answered wholly from it is the same image, and that is success).
    let forced = ecr_build(&e.fx, &moto, &e.front, &tag).arg("--force").run();
    if forced.code == Some(0) {
        assert!(!forced.stderr.contains("already names"), "{forced}");
    } else {
        forced
            .assert_code(3)
            .assert_stderr_mentions(&format!(":{tag} already names sha256:"))
            .assert_stderr_mentions("(--force, or changed files under the same commit)")
            .assert_stderr_mentions(&format!("--tag {tag}-2"));
        // A push refused this way shows no build log: the build went well.
        assert!(!forced.stderr.contains("last lines of its log"), "{forced}");
    }
    // The same commit tag for a different image: refused, with the way out.
    e.fx.project.write("app/api/index.json", "{\"other\": 1}\n");
    let run = ecr_build(&e.fx, &moto, &e.front, &tag).run();
    run.assert_code(3)
        .assert_stderr_mentions(&format!("bash-dog-api:{tag} already names sha256:"))
        .assert_stderr_mentions(&format!("--tag {tag}-2"));
    assert_eq!(e.front.overwrite_attempts(), 0);
}

#[test]
fn a_target_reused_past_the_tag_limit_keeps_building_and_pinning() {
    let e = ecr();
    let moto = e.moto.endpoint().to_string();
    for r in REPOS {
        moto_create(&moto, r, "MUTABLE", &[]);
    }
    // Each image gets its commit tag, `latest` and its fingerprint tag: the
    // cold build's images are full with one more commit tag.
    e.front.limit_tags(4);
    let cold = ecr_build(&e.fx, &moto, &e.front, &unique_id()).run();
    cold.assert_success();
    let digests: BTreeSet<String> = pins(&cold).into_iter().map(|(_, d, _)| d).collect();
    for n in 0..4 {
        let tag = unique_id();
        let run = ecr_build(&e.fx, &moto, &e.front, &tag).run();
        run.assert_success();
        let now: BTreeSet<String> = pins(&run).iter().map(|(_, d, _)| d.clone()).collect();
        assert_eq!(now, digests, "round {n}: the same images are pinned");
        let taskdef = std::fs::read_to_string(e.fx.project.out().join("taskdef.json"))
            .expect("the artifact is written");
        assert!(digests.iter().all(|d| taskdef.contains(d.as_str())));
        if n >= 1 {
            assert!(
                run.stderr.contains("not added: the image already carries"),
                "{run}"
            );
            for (_, _, tags) in pins(&run) {
                assert!(
                    !tags.contains(&tag),
                    "the report says the tag was not added: {tags:?}"
                );
            }
        }
    }
    assert!(e.front.limit_refusals() >= 3, "the limit was hit");
}

/// The base image, renamed as a Docker Hub official image only the mirror has.
fn base_in_mirror(fx: &Fixture, mirror: &Registry) -> String {
    let name = format!("sbhub{}", unique_id().to_lowercase());
    let in_mirror = format!("{}/hub/library/{name}:1", mirror.addr());
    docker_ok(&["tag", &fx.base_ref(), &in_mirror]);
    docker_ok(&["push", &in_mirror]);
    docker_ok(&["rmi", &in_mirror]);
    format!("{name}:1")
}

#[test]
fn a_mirror_serves_docker_hub_bases_without_changing_the_dockerfile() {
    let mut fx = Fixture::with_registry();
    let mirror = Registry::start();
    fx.images.watch_registry(mirror.addr());
    let hub_name = base_in_mirror(&fx, &mirror);
    let mirror_flag = format!("docker.io={}/hub", mirror.addr());
    let dockerfile = fx.project.read("Dockerfile");
    let build = |mirror: &str| {
        Sb::new()
            .args(["build", "--local", "--dir"])
            .arg(fx.project.root())
            .arg("--out")
            .arg(fx.project.out())
            .args([
                "--registry",
                fx.registry().addr(),
                "--tag",
                &fx.tag,
                "--progress",
                "plain",
            ])
            .arg("--build-arg")
            .arg(format!("BASE={hub_name}"))
            .args(["--mirror", mirror])
    };
    // Offline, the base exists only in the mirror (as a Docker Hub official
    // image, under `library/`): the build can only succeed through it.
    let run = build(&mirror_flag).run();
    run.assert_success();
    let pulled = format!("{}/hub/library/{hub_name}", mirror.addr());
    let repo = pulled.rsplit_once(':').map_or(pulled.as_str(), |(r, _)| r);
    assert!(
        run.stderr.contains(repo),
        "the engine was sent the mirror's name:\n{run}"
    );
    // (BuildKit keeps the pulled base in its own store, not in `docker
    // images`: that the build succeeded offline is the proof it was pulled.)
    assert_eq!(
        fx.project.read("Dockerfile"),
        dockerfile,
        "the Dockerfile is untouched"
    );

    // A mirror that is down: exit 3, naming it.
    let run = build("docker.io=127.0.0.1:9/hub").arg("--force").run();
    run.assert_code(3).assert_stderr_mentions("127.0.0.1:9");
}

#[test]
fn switching_to_a_mirror_changes_no_fingerprint() {
    let fx = Fixture::with_registry();
    let upstream = Registry::start();
    let mirror = Registry::start();
    let mut images = crate::harness::LocalImages::new(&fx.tag);
    images.watch_registry(upstream.addr());
    images.watch_registry(mirror.addr());
    // The same image in the upstream registry and in its mirror.
    let base = format!("{}/team/base:1", upstream.addr());
    for r in [base.clone(), format!("{}/up/team/base:1", mirror.addr())] {
        docker_ok(&["tag", &fx.base_ref(), &r]);
        docker_ok(&["push", &r]);
        docker_ok(&["rmi", &r]);
    }
    let plan = |extra: &[&str]| {
        let run = Sb::new()
            .args(["plan", "--local", "--json", "--dir"])
            .arg(fx.project.root())
            .args(["--registry", fx.registry().addr(), "--tag", &fx.tag])
            .arg("--build-arg")
            .arg(format!("BASE={base}"))
            .args(extra)
            .run();
        run.assert_success();
        run.json()["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .map(|t| t["fingerprint"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let direct = plan(&[]);
    let mirrored = plan(&[
        "--mirror",
        &format!("{}={}/up", upstream.addr(), mirror.addr()),
    ]);
    assert_eq!(direct, mirrored, "a mirror serves the same digests");
    // And the mirror is really asked: with it down, nothing resolves.
    let run = Sb::new()
        .args(["plan", "--local", "--dir"])
        .arg(fx.project.root())
        .args(["--registry", fx.registry().addr(), "--tag", &fx.tag])
        .arg("--build-arg")
        .arg(format!("BASE={base}"))
        .args(["--mirror", &format!("{}=127.0.0.1:9/up", upstream.addr())])
        .run();
    run.assert_code(3).assert_stderr_mentions("127.0.0.1:9");
}

#[test]
fn a_base_that_cannot_be_pulled_is_an_environment_error_naming_it() {
    let fx = Fixture::with_registry();
    let missing = format!("sbmissing{}:1", unique_id().to_lowercase());
    // Resolving its digest fails first (Docker Hub is unreachable here).
    let run = fx
        .build()
        .arg("--build-arg")
        .arg(format!("BASE={missing}"))
        .run();
    run.assert_code(3)
        .assert_stderr_mentions(&format!("image {missing}: registry registry-1.docker.io"))
        .assert_stderr_mentions("--mirror docker.io=");
    // Built anyway (--allow-unresolved), the engine's pull fails the same way.
    let run = fx
        .build()
        .arg("--build-arg")
        .arg(format!("BASE={missing}"))
        .arg("--allow-unresolved")
        .run();
    run.assert_code(3)
        .assert_stderr_mentions(&format!(
            "cannot pull the base image {missing} from Docker Hub"
        ))
        .assert_stderr_mentions("--mirror docker.io=");
}

/// The IAM action a registry request needs (ECR's registry permissions).
fn registry_action(method: &str, path: &str) -> Option<(&'static str, String)> {
    let rest = path.strip_prefix("/v2/")?;
    let (repo, action) = if let Some((repo, _)) = rest.rsplit_once("/manifests/") {
        let a = match method {
            "PUT" => "ecr:PutImage",
            _ => "ecr:BatchGetImage",
        };
        (repo, a)
    } else if let Some((repo, _)) = rest.split_once("/blobs/uploads") {
        let a = match method {
            "POST" => "ecr:InitiateLayerUpload",
            "PATCH" => "ecr:UploadLayerPart",
            _ => "ecr:CompleteLayerUpload",
        };
        (repo, a)
    } else if let Some((repo, _)) = rest.rsplit_once("/blobs/") {
        let a = match method {
            "HEAD" => "ecr:BatchCheckLayerAvailability",
            _ => "ecr:GetDownloadUrlForLayer",
        };
        (repo, a)
    } else {
        return None;
    };
    Some((action, repo.to_string()))
}

/// IAM's `*` wildcard, ignoring case.
fn iam_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_lowercase(), text.to_lowercase());
    match p.split_once('*') {
        None => p == t,
        Some((head, rest)) => t.strip_prefix(head).is_some_and(|tail| {
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && iam_match(rest, &tail[i..]))
        }),
    }
}

#[test]
fn the_iam_policy_init_writes_allows_exactly_what_a_build_calls() {
    let e = ecr();
    let recorder = AwsRecorder::start(e.moto.endpoint());
    // Cold with --create-repos, then one file changed (pulls `latest` as cache).
    ecr_build(&e.fx, recorder.endpoint(), &e.front, &unique_id())
        .arg("--create-repos")
        .run()
        .assert_success();
    // As on a fresh CodeBuild engine: none of the built images is local, so
    // pulling `latest` as cache downloads its layers.
    let (_, listing, _) = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    for image in listing.lines().filter(|l| l.starts_with(e.front.addr())) {
        docker_ok(&["rmi", image]);
    }
    e.fx.project
        .write("app/api/index.json", "{\"changed\": 1}\n");
    ecr_build(&e.fx, recorder.endpoint(), &e.front, &unique_id())
        .arg("--create-repos")
        .run()
        .assert_success();

    let called = calls_made(&e, &recorder);
    let allowed = policy_init_writes(&e.fx);
    for (action, resource) in &called {
        assert!(
            allowed
                .iter()
                .any(|(a, r)| iam_match(a, action) && iam_match(r, resource)),
            "the build called {action} on {resource}, which the policy does not allow: {allowed:#?}"
        );
    }
    for (action, _) in &allowed {
        assert!(
            called.iter().any(|(a, _)| a == action),
            "the policy allows {action}, which no build call needed: {called:#?}"
        );
    }
}

/// Every (action, resource) the builds called: AWS API calls the recorder
/// saw (on every repository, or `*`) and registry requests the front saw.
fn calls_made(e: &Ecr, recorder: &AwsRecorder) -> BTreeSet<(String, String)> {
    let arn = |repo: &str| format!("arn:aws:ecr:us-east-2:123456789012:repository/{repo}");
    let mut called: BTreeSet<(String, String)> = BTreeSet::new();
    for op in recorder.calls() {
        if op == "ecr:GetAuthorizationToken" || op == "sts:GetCallerIdentity" {
            called.insert((op, "*".to_string()));
        } else {
            for r in REPOS {
                called.insert((op.clone(), arn(r)));
            }
        }
    }
    for (method, path) in e.front.requests() {
        if let Some((action, repo)) = registry_action(&method, &path) {
            called.insert((action.to_string(), arn(&repo)));
        }
    }

    called
}

/// The (action, resource) pairs the IAM policy `init --create-repos` writes
/// for the project (its Dockerfile) allows; every statement an `Allow`.
fn policy_init_writes(fx: &Fixture) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fx.project.root().join("Dockerfile"),
        dir.path().join("Dockerfile"),
    )
    .expect("copy the Dockerfile");
    Sb::new()
        .args(["init", "--dir"])
        .arg(dir.path())
        .args([
            "--project",
            "bash-dog",
            "--account",
            "123456789012",
            "--region",
            "us-east-2",
        ])
        .arg("--create-repos")
        .run()
        .assert_success();
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("iam-policy.json")).expect("iam-policy.json"),
    )
    .expect("the policy is JSON");
    let mut allowed: Vec<(String, String)> = Vec::new();
    for st in policy["Statement"].as_array().expect("statements") {
        assert_eq!(st["Effect"], "Allow");
        let list = |v: &serde_json::Value| -> Vec<String> {
            match v {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            }
        };
        for a in list(&st["Action"]) {
            for r in list(&st["Resource"]) {
                allowed.push((a.clone(), r));
            }
        }
    }
    allowed
}
