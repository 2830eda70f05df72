//! Each input SPEC names changes the fingerprint; each excluded one does not.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::context::dockerignore::DockerIgnore;
use crate::context::walk;

const DOCKERFILE: &str = r#"ARG BASE=busybox:1
FROM ${BASE} AS base
RUN echo base
COPY shared/ /srv/shared/

FROM base AS assets
COPY assets/ /srv/assets/

FROM base AS api
ARG GREETING=hello
COPY api/ /srv/api/
RUN echo "$GREETING"

FROM base AS web
ARG WEB_ONLY
COPY --from=assets /srv/assets /srv/www
COPY web/*.html /srv/www/
"#;

struct Project {
    dir: tempfile::TempDir,
    dockerfile: String,
    args: BTreeMap<String, String>,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Project {
            dir,
            dockerfile: DOCKERFILE.to_string(),
            args: BTreeMap::new(),
        };
        p.write("shared/config.txt", "v1");
        p.write("assets/site.css", "body{}");
        p.write("api/main.sh", "echo api");
        p.write("web/index.html", "<html>");
        p.write("web/notes.txt", "not copied: only *.html is");
        p.write("README.md", "docs");
        p.write(".dockerignore", "**/*.md\n");
        p
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn fp(&self, stage: &str) -> Fingerprint {
        let df = crate::dockerfile::parse(&self.dockerfile).expect("parse");
        let graph = df.graph(&self.args).expect("graph");
        let ignore = DockerIgnore::load(self.root()).expect("ignore");
        let entries = walk::list(self.root(), &ignore, &[]).expect("walk");
        let idx = df.stage_index(stage).expect("stage");
        fingerprint(&df, &graph, idx, &self.args, self.root(), &entries).expect("fingerprint")
    }

    fn all(&self) -> [Fingerprint; 2] {
        [self.fp("api"), self.fp("web")]
    }

    /// The fingerprint of `stage` with the outside inputs resolved as `outside` says.
    fn fp_with(&self, stage: &str, outside: &Outside) -> Fingerprint {
        let df = crate::dockerfile::parse(&self.dockerfile).expect("parse");
        let graph = df.graph(&self.args).expect("graph");
        let entries = walk::list(self.root(), &DockerIgnore::default(), &[]).expect("walk");
        let src = Sources {
            df: &df,
            graph: &graph,
            build_args: &self.args,
            outside,
        };
        let idx = df.stage_index(stage).expect("stage");
        fingerprint_cached(
            &src,
            idx,
            self.root(),
            &entries,
            &mut SourceCache::default(),
        )
        .expect("fingerprint")
    }
}

fn image(r: &str, digest: char) -> (Input, crate::outside::Identity) {
    (
        Input::Image(r.to_string()),
        crate::outside::Identity::Digest(format!("sha256:{}", digest.to_string().repeat(64))),
    )
}

#[test]
fn is_stable_and_differs_per_target() {
    let p = Project::new();
    let [api, web] = p.all();
    assert_eq!(api, p.fp("api"));
    assert_ne!(api, web);
    assert!(api.as_digest().starts_with("sha256:") && api.as_digest().len() == 71);
    assert_eq!(api.tag(), format!("fp-{}", &api.as_digest()[7..]));
}

#[test]
fn a_file_only_one_target_copies_changes_only_that_target() {
    let p = Project::new();
    let [api, web] = p.all();
    p.write("api/main.sh", "echo api v2");
    let [api2, web2] = p.all();
    assert_ne!(api, api2);
    assert_eq!(web, web2);
}

#[test]
fn a_file_of_the_shared_stage_changes_every_dependent() {
    let p = Project::new();
    let [api, web] = p.all();
    p.write("shared/config.txt", "v2");
    let [api2, web2] = p.all();
    assert_ne!(api, api2);
    assert_ne!(web, web2);
}

#[test]
fn a_file_of_a_stage_taken_with_copy_from_changes_only_its_user() {
    let p = Project::new();
    let [api, web] = p.all();
    p.write("assets/site.css", "body{color:red}");
    let [api2, web2] = p.all();
    assert_eq!(api, api2);
    assert_ne!(web, web2);
}

#[test]
fn files_no_instruction_reads_change_nothing() {
    let p = Project::new();
    let before = p.all();
    p.write("web/notes.txt", "changed, but *.html does not match it");
    p.write("other-service/main.go", "package main");
    assert_eq!(before, p.all());
}

#[test]
fn dockerignored_files_change_nothing() {
    let p = Project::new();
    let before = p.all();
    p.write(
        "api/CHANGELOG.md",
        "ignored by **/*.md even though api/ is copied",
    );
    assert_eq!(before, p.all());
}

#[test]
fn a_new_file_under_a_copied_directory_changes_it() {
    let p = Project::new();
    let [api, web] = p.all();
    p.write("api/extra.sh", "new");
    let [api2, web2] = p.all();
    assert_ne!(api, api2);
    assert_eq!(web, web2);
}

#[test]
fn the_exec_bit_changes_it_and_mtime_does_not() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    let [api, _] = p.all();
    let file = p.root().join("api/main.sh");
    let f = std::fs::File::options()
        .append(true)
        .open(&file)
        .expect("open");
    f.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .expect("mtime");
    drop(f);
    assert_eq!(api, p.fp("api"), "mtime must not count");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_ne!(api, p.fp("api"), "the exec bit must count");
}

#[test]
fn symlink_targets_count() {
    let p = Project::new();
    std::os::unix::fs::symlink("main.sh", p.root().join("api/link")).expect("symlink");
    let a = p.fp("api");
    std::fs::remove_file(p.root().join("api/link")).expect("rm");
    std::os::unix::fs::symlink("other.sh", p.root().join("api/link")).expect("symlink");
    assert_ne!(a, p.fp("api"));
}

#[test]
fn a_build_arg_counts_only_for_stages_that_declare_it() {
    let mut p = Project::new();
    let [api, web] = p.all();
    p.args.insert("GREETING".into(), "hi".into());
    let [api2, web2] = p.all();
    assert_ne!(api, api2);
    assert_eq!(web, web2);
    p.args.insert("WEB_ONLY".into(), "x".into());
    let [api3, web3] = p.all();
    assert_eq!(api2, api3);
    assert_ne!(web2, web3);
    p.args.insert("UNUSED".into(), "y".into());
    assert_eq!([api3, web3], p.all());
}

#[test]
fn a_build_arg_equal_to_the_default_is_not_the_same_as_the_default_text() {
    // Passing the default explicitly may change the fingerprint (conservative), but
    // passing it twice gives the same one.
    let mut p = Project::new();
    p.args.insert("GREETING".into(), "hello".into());
    assert_eq!(p.fp("api"), p.fp("api"));
}

#[test]
fn the_base_image_reference_counts() {
    let mut p = Project::new();
    let [api, web] = p.all();
    p.args.insert("BASE".into(), "busybox:2".into());
    let [api2, web2] = p.all();
    assert_ne!(api, api2);
    assert_ne!(web, web2);
}

#[test]
fn instructions_count_but_other_stages_and_comment_lines_do_not() {
    let mut p = Project::new();
    let [api, web] = p.all();
    p.dockerfile = p
        .dockerfile
        .replace("RUN echo \"$GREETING\"", "RUN echo \"$GREETING\" > /g");
    let [api2, web2] = p.all();
    assert_ne!(api, api2);
    assert_eq!(web, web2);
    p.dockerfile = format!("# a comment\n{}\n# trailing\n", p.dockerfile);
    assert_eq!([api2, web2], p.all());
    p.dockerfile
        .push_str("\nFROM base AS extra\nRUN echo unrelated\n");
    assert_eq!(p.fp("web"), web);
}

#[test]
fn a_shared_stage_instruction_changes_every_dependent() {
    let mut p = Project::new();
    let [api, web] = p.all();
    p.dockerfile = p.dockerfile.replace("RUN echo base", "RUN echo base v2");
    let [api2, web2] = p.all();
    assert_ne!(api, api2);
    assert_ne!(web, web2);
}

#[test]
fn add_url_counts_as_its_url() {
    let mut p = Project::new();
    p.dockerfile
        .push_str("\nFROM base AS dl\nADD https://example.com/a.tgz /tmp/\n");
    let a = p.fp("dl");
    p.dockerfile = p.dockerfile.replace("a.tgz", "b.tgz");
    assert_ne!(a, p.fp("dl"));
}

#[test]
fn a_missing_copy_source_is_an_error_with_its_line() {
    let mut p = Project::new();
    p.dockerfile = p
        .dockerfile
        .replace("COPY api/ /srv/api/", "COPY nope/ /srv/api/");
    let df = crate::dockerfile::parse(&p.dockerfile).expect("parse");
    let graph = df.graph(&p.args).expect("graph");
    let entries = walk::list(p.root(), &DockerIgnore::default(), &[]).expect("walk");
    let idx = df.stage_index("api").expect("stage");
    let err = fingerprint(&df, &graph, idx, &p.args, p.root(), &entries).expect_err("missing");
    assert!(err.to_string().contains("line 11"), "{err}");
}

/// Issue 14: a base that moved under the same tag is another input; the
/// same digest under another name (a mirror) is the same input.
#[test]
fn what_a_base_points_to_counts_not_its_name() {
    let mut p = Project::new();
    let at = |r: &str, d: char| {
        let (i, id) = image(r, d);
        Outside::default().with(i, id)
    };
    let before = p.fp_with("api", &at("busybox:1", 'a'));
    assert_eq!(before, p.fp_with("api", &at("busybox:1", 'a')));
    let moved = p.fp_with("api", &at("busybox:1", 'b'));
    assert_ne!(before, moved, "the tag moved: rebuild");
    p.args.insert(
        "BASE".into(),
        "123456789012.dkr.ecr.us-east-2.amazonaws.com/hub/library/busybox:1".into(),
    );
    let mirrored = at(
        "123456789012.dkr.ecr.us-east-2.amazonaws.com/hub/library/busybox:1",
        'a',
    );
    assert_eq!(
        before,
        p.fp_with("api", &mirrored),
        "same digest, same input"
    );
}

#[test]
fn an_unresolved_input_is_an_error_not_a_guess() {
    let p = Project::new();
    let df = crate::dockerfile::parse(&p.dockerfile).expect("parse");
    let graph = df.graph(&p.args).expect("graph");
    let entries = walk::list(p.root(), &DockerIgnore::default(), &[]).expect("walk");
    let nothing = Outside::default();
    let src = Sources {
        df: &df,
        graph: &graph,
        build_args: &p.args,
        outside: &nothing,
    };
    let idx = df.stage_index("api").expect("stage");
    let err = fingerprint_cached(&src, idx, p.root(), &entries, &mut SourceCache::default())
        .expect_err("busybox:1 was never resolved");
    assert!(matches!(err, FingerprintError::Unresolved(_)), "{err}");
}

#[test]
fn add_url_counts_its_content() {
    let mut p = Project::new();
    p.dockerfile
        .push_str("\nFROM base AS dl\nADD https://example.com/a.tgz /tmp/\n");
    let (base, id) = image("busybox:1", 'a');
    let url = Input::Url {
        url: "https://example.com/a.tgz".into(),
        checksum: None,
    };
    let content = |c: char| {
        Outside::default().with(base.clone(), id.clone()).with(
            url.clone(),
            crate::outside::Identity::Content(format!("sha256:{}", c.to_string().repeat(64))),
        )
    };
    let one = p.fp_with("dl", &content('1'));
    assert_eq!(one, p.fp_with("dl", &content('1')));
    assert_ne!(one, p.fp_with("dl", &content('2')), "new bytes at the URL");
    assert_eq!(
        p.fp_with("api", &content('1')),
        p.fp_with("api", &content('2')),
        "api reads no URL"
    );
}

/// Issue 14, item 4: the `# syntax=` line changes how the file is built.
#[test]
fn the_syntax_directive_counts_and_check_does_not() {
    let mut p = Project::new();
    let plain = p.fp("api");
    p.dockerfile = format!("# syntax=docker/dockerfile:1.7\n{DOCKERFILE}");
    let one_seven = p.fp("api");
    assert_ne!(plain, one_seven);
    p.dockerfile = format!("# syntax=docker/dockerfile:1.9\n{DOCKERFILE}");
    assert_ne!(one_seven, p.fp("api"));
    p.dockerfile = format!("# syntax=docker/dockerfile:1.9\n# check=skip=all\n{DOCKERFILE}");
    let checked = p.fp("api");
    p.dockerfile = format!("# syntax=docker/dockerfile:1.9\n# check=error=true\n{DOCKERFILE}");
    assert_eq!(checked, p.fp("api"), "lint settings build nothing");
}

/// Issue 14, item 1: `FROM bin-$TARGETOS` depends on `bin-linux`.
#[test]
fn a_stage_picked_by_a_platform_arg_counts() {
    let mut p = Project::new();
    p.dockerfile = "FROM alpine:3.20 AS bin-linux\nRUN echo one > /x\nFROM bin-$TARGETOS AS bin\nFROM alpine:3.20 AS app\nCOPY --from=bin /x /x\n".into();
    let one = p.fp("app");
    p.dockerfile = p.dockerfile.replace("echo one", "echo two");
    assert_ne!(one, p.fp("app"), "the change in bin-linux reaches app");
}
