//! Resolution against in-memory registries (one per host, each recording
//! what it was asked) and the fake engine: which rule each kind of image
//! follows, that a moved tag or a re-imported image changes the identity,
//! that every distinct input is asked once, and that a failure stops the
//! run unless `--allow-unresolved` turns it into a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::build::fakes::{FakeEngine, World};
use crate::engine::LocalImage;
use crate::registry::ecr::Aws;
use crate::registry::{AwsError, ImageConfig, Registry};
use crate::report::reporter::{Render, Reporter};
use crate::services::Connected;

/// `repository:reference` → digest, in one registry.
type Content = BTreeMap<String, String>;

/// host → its content; `None` for a host that is down.
#[derive(Default, Clone)]
struct Hosts {
    content: Arc<Mutex<BTreeMap<String, Option<Content>>>>,
    asked: Arc<Mutex<Vec<String>>>,
    creds: Arc<Mutex<Vec<(String, bool)>>>,
}

impl Hosts {
    fn put(&self, host: &str, repo_ref: &str, digest: &str) {
        self.content
            .lock()
            .expect("hosts")
            .entry(host.to_string())
            .or_insert_with(|| Some(BTreeMap::new()))
            .get_or_insert_with(BTreeMap::new)
            .insert(repo_ref.to_string(), digest.to_string());
    }

    fn down(&self, host: &str) {
        self.content
            .lock()
            .expect("hosts")
            .insert(host.to_string(), None);
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("asked").clone()
    }
}

struct HostRegistry {
    host: String,
    hosts: Hosts,
}

#[async_trait]
impl Registry for HostRegistry {
    async fn ping(&self) -> Result<(), RegistryError> {
        Ok(())
    }

    async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let key = format!("{repo}:{reference}");
        self.hosts
            .asked
            .lock()
            .expect("asked")
            .push(format!("{}/{key}", self.host));
        match self.hosts.content.lock().expect("hosts").get(&self.host) {
            Some(Some(m)) => Ok(m.get(&key).cloned()),
            Some(None) => Err(RegistryError::Unreachable {
                host: self.host.clone(),
                attempts: 1,
                detail: "connection refused".into(),
            }),
            None => Ok(None),
        }
    }

    async fn copy_tag(&self, _: &str, _: &str, _: &str) -> Result<String, RegistryError> {
        unreachable!("resolution never writes")
    }

    async fn config_digest(&self, _: &str, _: &str) -> Result<Option<String>, RegistryError> {
        Ok(None)
    }

    async fn image_config(&self, _: &str, _: &str) -> Result<Option<ImageConfig>, RegistryError> {
        Ok(None)
    }
}

struct TestServices(Hosts);

#[async_trait]
impl Services for TestServices {
    async fn engine(&self, _: Duration, _: Duration) -> Result<Connected, EngineError> {
        Err(EngineError::Unreachable {
            detail: "no engine in these tests".into(),
        })
    }

    async fn aws(&self, _: Option<String>, _: Duration) -> Result<Arc<dyn Aws>, AwsError> {
        Err(AwsError::NoRegion)
    }

    fn registry(
        &self,
        host: &str,
        credentials: Option<Credentials>,
        _: RetryPolicy,
    ) -> Result<Arc<dyn Registry>, RegistryError> {
        let c = (host.to_string(), credentials.is_some());
        self.0.creds.lock().expect("creds").push(c);
        Ok(Arc::new(HostRegistry {
            host: host.to_string(),
            hosts: self.0.clone(),
        }))
    }
}

#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<Event>>>);

impl Render for Collected {
    fn event(&mut self, event: &Event) {
        self.0.lock().expect("events").push(event.clone());
    }
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn images(refs: &[&str]) -> BTreeSet<Input> {
    refs.iter().map(|r| Input::Image(r.to_string())).collect()
}

/// Resolves `inputs` with the fake engine of `world` and `hosts`.
async fn run(
    world: &Arc<World>,
    hosts: &Hosts,
    inputs: BTreeSet<Input>,
    allow_unresolved: bool,
) -> (Result<Outside, Error>, Vec<Event>) {
    let services = TestServices(hosts.clone());
    let engine = FakeEngine(world.clone());
    let src = Sources {
        engine: Some(&engine),
        services: &services,
        ours: Some(("127.0.0.1:5000".into(), Some(Credentials::new("AWS", "t")))),
        routes: Routes::default(),
        policy: RetryPolicy::no_retry(),
        timeout: Duration::from_secs(5),
        allow_unresolved,
    };
    let collected = Collected::default();
    let reporter = Reporter::with_renderers(vec![Box::new(collected.clone())]);
    let r = resolve(inputs, &src, &reporter.events()).await;
    reporter.finish(None);
    let events = collected.0.lock().expect("events").clone();
    (r, events)
}

fn identity(o: &Outside, r: &str) -> Identity {
    o.get(&Input::Image(r.to_string()))
        .map(|r| r.identity.clone())
        .unwrap_or_else(|| panic!("{r} not resolved"))
}

#[tokio::test]
async fn an_engine_only_image_is_its_id_and_a_reimport_moves_it() {
    let world = World::new();
    let hosts = Hosts::default();
    let (r, _) = run(
        &world,
        &hosts,
        images(&["stackbake-test/busybox:latest"]),
        false,
    )
    .await;
    let first = identity(&r.expect("resolves"), "stackbake-test/busybox:latest");
    assert!(matches!(first, Identity::ImageId(_)), "{first:?}");
    assert!(
        hosts.asked().is_empty(),
        "no registry asked: {:?}",
        hosts.asked()
    );
    world.import("stackbake-test/busybox:latest", "patched busybox");
    let (r, _) = run(
        &world,
        &hosts,
        images(&["stackbake-test/busybox:latest"]),
        false,
    )
    .await;
    let second = identity(&r.expect("resolves"), "stackbake-test/busybox:latest");
    assert_ne!(first, second, "a re-imported base is another input");
}

#[tokio::test]
async fn a_registry_image_is_its_digest_pinned_and_asked_once() {
    let world = World::new();
    let hosts = Hosts::default();
    hosts.put(
        "registry-1.docker.io",
        "library/python:3.12-slim",
        &digest('a'),
    );
    hosts.put("127.0.0.1:5000", "base:1", &digest('b'));
    let inputs = images(&["python:3.12-slim", "127.0.0.1:5000/base:1"]);
    let (r, _) = run(&world, &hosts, inputs, false).await;
    let o = r.expect("resolves");
    assert_eq!(
        identity(&o, "python:3.12-slim"),
        Identity::Digest(digest('a'))
    );
    assert_eq!(
        o.pin("python:3.12-slim"),
        Some(format!("python@{}", digest('a')))
    );
    assert_eq!(
        o.pin("127.0.0.1:5000/base:1"),
        Some(format!("127.0.0.1:5000/base@{}", digest('b')))
    );
    let mut asked = hosts.asked();
    asked.sort();
    assert_eq!(
        asked,
        [
            "127.0.0.1:5000/base:1",
            "registry-1.docker.io/library/python:3.12-slim"
        ]
    );
    // Only the registry images go to gets the run's credentials.
    let creds = hosts.creds.lock().expect("creds").clone();
    assert!(
        creds.contains(&("127.0.0.1:5000".into(), true)),
        "{creds:?}"
    );
    assert!(
        creds.contains(&("registry-1.docker.io".into(), false)),
        "{creds:?}"
    );
}

#[tokio::test]
async fn a_pulled_image_follows_its_registry_not_the_stale_local_copy() {
    let world = World::new();
    let hosts = Hosts::default();
    // The engine pulled 127.0.0.1:5000/base:1 when it was digest a…
    let id = world.import("127.0.0.1:5000/base:1", "old base");
    world.set_image(LocalImage {
        id,
        repo_digests: vec![format!("127.0.0.1:5000/base@{}", digest('a'))],
        ..LocalImage::default()
    });
    // …and the tag has moved since.
    hosts.put("127.0.0.1:5000", "base:1", &digest('c'));
    let (r, _) = run(&world, &hosts, images(&["127.0.0.1:5000/base:1"]), false).await;
    let o = r.expect("resolves");
    assert_eq!(
        identity(&o, "127.0.0.1:5000/base:1"),
        Identity::Digest(digest('c'))
    );
}

#[tokio::test]
async fn an_unreachable_registry_stops_the_run_or_warns_with_the_flag() {
    let world = World::new();
    let hosts = Hosts::default();
    hosts.down("127.0.0.1:5999");
    let inputs = images(&["127.0.0.1:5999/base:1"]);
    let (r, _) = run(&world, &hosts, inputs.clone(), false).await;
    let err = r.expect_err("never decided on an unresolved base");
    assert_eq!(err.exit_code(), crate::error::exit_code::ENVIRONMENT);
    let text = err.render();
    assert!(text.contains("127.0.0.1:5999/base:1"), "{text}");
    assert!(text.contains("registry 127.0.0.1:5999"), "{text}");
    assert!(text.contains("--allow-unresolved"), "{text}");

    let (r, events) = run(&world, &hosts, inputs, true).await;
    let o = r.expect("the flag lets the run go on");
    assert_eq!(
        identity(&o, "127.0.0.1:5999/base:1"),
        Identity::Unresolved("127.0.0.1:5999/base:1".into())
    );
    assert_eq!(o.pin("127.0.0.1:5999/base:1"), None, "sent as written");
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Unresolved { input, .. } if input == "127.0.0.1:5999/base:1")
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_unknown_image_is_not_found_where_it_was_asked() {
    let world = World::new();
    let hosts = Hosts::default();
    let (r, _) = run(&world, &hosts, images(&["ghcr.io/team/nope:1"]), false).await;
    let text = r.expect_err("unknown").render();
    assert!(
        text.contains("image ghcr.io/team/nope:1 is not in registry ghcr.io"),
        "{text}"
    );
}

#[tokio::test]
async fn a_mirror_serves_the_same_digest_so_the_identity_stays() {
    let world = World::new();
    let hosts = Hosts::default();
    hosts.put("registry-1.docker.io", "library/node:20", &digest('d'));
    hosts.put("127.0.0.1:5000", "hub/library/node:20", &digest('d'));
    let (direct, _) = run(&world, &hosts, images(&["node:20"]), false).await;
    let services = TestServices(hosts.clone());
    let engine = FakeEngine(world.clone());
    let src = Sources {
        engine: Some(&engine),
        services: &services,
        ours: None,
        routes: Routes::default().with_mirror("docker.io", "127.0.0.1:5000", "hub"),
        policy: RetryPolicy::no_retry(),
        timeout: Duration::from_secs(5),
        allow_unresolved: false,
    };
    let reporter = Reporter::with_renderers(Vec::new());
    let mirrored = resolve(images(&["node:20"]), &src, &reporter.events())
        .await
        .expect("resolves through the mirror");
    reporter.finish(None);
    let direct = direct.expect("resolves");
    assert_eq!(identity(&direct, "node:20"), identity(&mirrored, "node:20"));
    assert_eq!(
        mirrored.pin("node:20"),
        Some(format!("127.0.0.1:5000/hub/library/node@{}", digest('d')))
    );
}

#[test]
fn the_images_label_round_trips() {
    let o = Outside::by_name(images(&["x:1"]));
    assert_eq!(o.images_label(&BTreeSet::from(["x:1".to_string()])), "");
    let mut o = Outside::default();
    o.resolved.insert(
        Input::Image("python:3.12-slim".into()),
        Resolved {
            identity: Identity::Digest(digest('a')),
            pin: None,
        },
    );
    o.resolved.insert(
        Input::Image("stackbake-test/busybox:latest".into()),
        Resolved {
            identity: Identity::ImageId(digest('b')),
            pin: None,
        },
    );
    let all = BTreeSet::from([
        "python:3.12-slim".into(),
        "stackbake-test/busybox:latest".into(),
    ]);
    let label = o.images_label(&all);
    let back = parse_images_label(&label);
    assert_eq!(back.get("python:3.12-slim"), Some(&digest('a')));
    assert_eq!(
        back.get("stackbake-test/busybox:latest"),
        Some(&digest('b'))
    );
}
