//! Checks of the harness itself (registry, moto, base image, cleanup), so
//! that a failing build test points at stackbake and not at its fixtures.
//! These need the engine, docker-registry and moto, but not stackbake.

use crate::harness::{
    BaseImage, LocalImages, Moto, Project, Registry, docker, docker_ok, docker_run,
    local_image_exists, unique_id,
};

#[test]
fn anonymous_registry_reports_the_digest_docker_pushed() {
    let base = BaseImage::fresh();
    let registry = Registry::start();
    let tag = unique_id();
    let mut images = LocalImages::new(&tag);
    images.watch_registry(registry.addr());
    let pushed = format!("{}/selftest:{tag}", registry.addr());
    docker_ok(&["tag", base.reference(), &pushed]);
    let (ok, stdout, stderr) = docker(&["push", &pushed]);
    assert!(ok, "docker push failed: {stdout}{stderr}");
    let repo_digest = docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        &pushed,
    ]);
    let digest = registry.digest("selftest", &tag).expect("pushed tag");
    assert_eq!(
        repo_digest,
        format!("{}/selftest@{digest}", registry.addr())
    );
    assert_eq!(registry.tags("selftest"), vec![tag.clone()]);
    assert_eq!(registry.digest("selftest", "latest"), None);
    assert!(registry.tags("never-pushed").is_empty());

    assert!(images.references().contains(&pushed));
    drop(images);
    assert!(!local_image_exists(&pushed), "cleanup left {pushed}");
}

#[test]
fn authenticated_registry_refuses_anonymous_reads() {
    let registry = Registry::start_with_auth("AWS", "123456789012-auth-token");
    let url = format!("http://{}/v2/", registry.addr());
    let status = |extra: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(&url)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(status(&[]), "401");
    assert_eq!(status(&["-u", "AWS:123456789012-auth-token"]), "200");
    assert_eq!(status(&["-u", "AWS:wrong"]), "401");
    assert!(registry.tags("bash-dog-api").is_empty());
    assert_eq!(registry.digest("bash-dog-api", "latest"), None);
}

#[test]
fn fresh_base_images_are_distinct_runnable_and_removed() {
    let a = BaseImage::fresh();
    let b = BaseImage::fresh();
    let id = |r: &str| docker_ok(&["image", "inspect", "--format", "{{.Id}}", r]);
    assert_ne!(
        id(a.reference()),
        id(b.reference()),
        "layer cache would be shared"
    );
    assert_eq!(
        docker_run(a.reference(), &["sh", "-c", "echo hi | wc -c"]),
        "3"
    );
    let reference = a.reference().to_owned();
    drop(a);
    assert!(!local_image_exists(&reference));
}

#[test]
fn moto_answers_sts_with_the_test_account() {
    let moto = Moto::start();
    let env = moto.env();
    assert!(env.contains(&("AWS_REGION".to_owned(), "us-east-2".to_owned())));
    let out = std::process::Command::new("curl")
        .args(["-sS", "-X", "POST", moto.endpoint()])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-2/sts/aws4_request, SignedHeaders=host, Signature=0",
            "-d",
            "Action=GetCallerIdentity&Version=2011-06-15",
        ])
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("<Account>123456789012</Account>"), "{body}");
    moto.reset();
}

#[test]
fn example_project_is_a_faithful_copy() {
    let project = Project::example();
    for name in [
        "Dockerfile",
        ".dockerignore",
        "taskdef.json",
        "appspec.yaml",
    ] {
        let original =
            std::fs::read_to_string(std::path::Path::new(crate::harness::REPO_ROOT).join(name))
                .expect("example file");
        assert_eq!(project.read(name), original, "{name}");
    }
    assert!(project.path("app/sidecar/run.sh").is_file());
    assert!(!project.out().exists());
    project.edit("app/shared/config.txt", |s| s.replace("v1", "v2"));
    assert_eq!(project.read("app/shared/config.txt"), "shared config v2\n");
}
