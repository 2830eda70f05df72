//! What the chosen builder and engine can run, checked before anything is
//! built. Pure: the parsed Dockerfile, the stages that will be built, the
//! engine's version and builder, and the `--secret` ids go in; refusals
//! come out, each naming the instruction, its line, the engine and what to
//! change. `build` stops on any (exit 2); `check` shows them when an engine
//! answers.
//!
//! The engine's built-in BuildKit (and so its built-in Dockerfile frontend)
//! follows the Docker version: 20.10 has v0.8 (`RUN --mount`, no heredocs,
//! no `COPY --link`), 23.0 v0.10 (heredocs, `--link`), 24 v0.11, 25 v0.12
//! (`ADD --checksum`, `ADD <git url>`), 26 v0.13 (the Dockerfile 1.7
//! string operations, `${V#p}`, `${V/p/r}`, …), 27.3 v0.16 (secrets as
//! environment variables). The classic builder runs none of BuildKit's
//! additions, except what is only parsing: an engine's classic builder
//! expands the string operations its BuildKit reads.

use std::collections::BTreeSet;
use std::fmt;

use crate::dockerfile::{Dockerfile, Feature as UseKind, FeatureUse, Instruction};

/// Which builder runs the builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuilderKind {
    /// The engine's legacy builder.
    Classic,
    /// The engine's BuildKit.
    BuildKit,
}

/// The builder and the engine it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// The builder.
    pub(crate) builder: BuilderKind,
    /// The engine's version as it reports it (`20.10.24+dfsg1`).
    pub(crate) engine: String,
}

/// A BuildKit version, `(0, minor)` in practice.
type Version = (u32, u32);

impl Capabilities {
    /// The BuildKit version built into the engine (its Dockerfile frontend
    /// is what runs a file without `# syntax=`); `None` when the version
    /// cannot be read (nothing is refused on a guess).
    pub(crate) fn builtin_buildkit(&self) -> Option<Version> {
        let mut parts = self.engine.split(['.', '+', '-', '~']);
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        Some(match (major, minor) {
            (0..=17, _) => (0, 0),
            (18 | 19, _) => (0, 6),
            (20..=22, _) => (0, 8),
            (23, _) => (0, 10),
            (24, _) => (0, 11),
            (25, _) => (0, 12),
            (26, _) => (0, 13),
            (27, 0) => (0, 14),
            (27, 1 | 2) => (0, 15),
            (27, _) => (0, 16),
            (28, _) => (0, 20),
            _ => (0, 25),
        })
    }

    fn describe(&self) -> String {
        match (self.builder, self.builtin_buildkit()) {
            (BuilderKind::Classic, _) => format!("the classic builder of Docker {}", self.engine),
            (BuilderKind::BuildKit, Some((a, b))) => {
                format!("Docker {}'s built-in BuildKit v{a}.{b}", self.engine)
            }
            (BuilderKind::BuildKit, None) => format!("Docker {}'s BuildKit", self.engine),
        }
    }
}

/// Something the build cannot run, found before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// 1-based line of the instruction.
    pub(crate) line: usize,
    /// The instruction, shortened.
    pub(crate) instruction: String,
    /// What cannot run, and on what.
    pub(crate) problem: String,
    /// What to change.
    pub(crate) fix: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Dockerfile line {}: `{}`: {}; {}",
            self.line, self.instruction, self.problem, self.fix
        )
    }
}

/// A feature some instruction uses, with the BuildKit version it needs.
struct Feature {
    what: String,
    needs: Version,
    docker: &'static str,
    /// Whether the classic builder of an engine whose BuildKit has `needs`
    /// runs it too (it shares BuildKit's Dockerfile parser and shell
    /// lexer, not its build steps).
    classic: bool,
    alternative: &'static str,
}

impl Feature {
    fn new(what: impl Into<String>, needs: Version, docker: &'static str) -> Feature {
        Feature {
            what: what.into(),
            needs,
            docker,
            classic: false,
            alternative: "",
        }
    }

    fn or(self, alternative: &'static str) -> Feature {
        Feature {
            alternative,
            ..self
        }
    }
}

/// The refusals for building `stages` of `df` with `caps` and the secret
/// ids in `secrets`, in line order. The global `ARG`s are read by every
/// stage, so they are checked with any.
pub(crate) fn refusals(
    df: &Dockerfile,
    stages: &[usize],
    caps: &Capabilities,
    secrets: &BTreeSet<String>,
) -> Vec<Refusal> {
    let built = stages.iter().filter_map(|&s| df.stages.get(s));
    let instructions: Vec<&Instruction> =
        if stages.is_empty() {
            Vec::new()
        } else {
            df.global_arg_instructions()
                .iter()
                .chain(built.flat_map(|st| {
                    std::iter::once(st.opening_instruction()).chain(&st.instructions)
                }))
                .collect()
        };
    let uses = df.feature_uses();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for ins in instructions {
        if !seen.insert(ins.line) {
            continue;
        }
        let at_line = uses.iter().filter(|u| u.line == ins.line);
        for feature in features(ins).into_iter().chain(at_line.filter_map(used)) {
            if let Some(r) = refuse(ins, &feature, caps) {
                out.push(r);
            }
        }
        for (id, required) in secret_mounts(ins) {
            if required && !secrets.contains(&id) {
                out.push(Refusal {
                    line: ins.line,
                    instruction: short(ins),
                    problem: format!("it needs the secret `{id}` (required=true), which was not given"),
                    fix: format!(
                        "pass it with `--secret id={id},src=FILE` or `--secret id={id},env=VARIABLE`"
                    ),
                });
            }
        }
    }
    out.sort_by_key(|r| r.line);
    out
}

/// The features `ins` uses, read from its flags, that not every builder runs.
fn features(ins: &Instruction) -> Vec<Feature> {
    let mut out = Vec::new();
    if !ins.heredocs.is_empty() {
        out.push(
            Feature::new("a heredoc (`<<EOF`)", (0, 10), "23.0")
                .or("or write the script on the instruction line (`RUN a && b`)"),
        );
    }
    let kw = ins.keyword.as_str();
    for f in &ins.flags {
        match (kw, f.name.as_str()) {
            ("COPY" | "ADD", "link") if f.value.as_deref() != Some("false") => out.push(
                Feature::new("`--link`", (0, 10), "23.0")
                    .or("or remove `--link` (the copy is then not independent of earlier layers)"),
            ),
            ("ADD", "checksum") => out.push(Feature::new("`ADD --checksum`", (0, 12), "25.0").or(
                "or remove `--checksum` (stackbake fingerprints the downloaded content either way)",
            )),
            ("RUN", "mount") => {
                out.push(Feature::new("`RUN --mount`", (0, 6), "18.09"));
                let fields = crate::dockerfile::mount_fields(f.value.as_deref().unwrap_or(""));
                let secret = fields
                    .iter()
                    .any(|m| m.key == "type" && m.value == "secret");
                if secret && fields.iter().any(|m| m.key == "env") {
                    out.push(
                        Feature::new(
                            "a secret mounted as an environment variable (`env=`)",
                            (0, 16),
                            "27.3",
                        )
                        .or("or mount it as a file (`target=/run/secrets/ID`) and read it there"),
                    );
                }
            }
            ("RUN", "network" | "security") | ("COPY" | "ADD", "chmod") => {
                out.push(Feature::new("this flag", (0, 6), "18.09"));
            }
            _ => {}
        }
    }
    out
}

/// The feature behind one use the Dockerfile reader found in an
/// instruction's arguments (`ADD --checksum` is read from the flags above).
fn used(u: &FeatureUse) -> Option<Feature> {
    match u.feature {
        UseKind::StringOperations => Some(Feature {
            classic: true,
            ..Feature::new(
                format!("`{}`, a Dockerfile 1.7 string operation,", u.text),
                (0, 13),
                "26.0",
            )
            .or("or compute the value another way (pass it with --build-arg, or derive it in a RUN step)")
        }),
        UseKind::AddGit => Some(
            Feature::new(format!("adding the git repository `{}`", u.text), (0, 12), "25.0").or(
                "or clone it in a stage (`RUN git clone --depth 1 --branch REF URL /src`) and `COPY --from` it",
            ),
        ),
        UseKind::AddChecksum => None,
    }
}

fn refuse(ins: &Instruction, f: &Feature, caps: &Capabilities) -> Option<Refusal> {
    let on = caps.describe();
    let alternative = if f.alternative.is_empty() {
        String::new()
    } else {
        format!(", {}", f.alternative)
    };
    let too_old = |have: Version| {
        (have < f.needs).then(|| Refusal {
            line: ins.line,
            instruction: short(ins),
            problem: format!(
                "{} needs BuildKit v{}.{} (Docker {} or newer), and this engine has {on}",
                f.what, f.needs.0, f.needs.1, f.docker
            ),
            fix: format!("upgrade the engine (in CodeBuild: a newer build image){alternative}"),
        })
    };
    match caps.builder {
        BuilderKind::Classic if f.classic => too_old(caps.builtin_buildkit()?),
        BuilderKind::Classic => Some(Refusal {
            line: ins.line,
            instruction: short(ins),
            problem: format!("{} needs BuildKit, and this build uses {on}", f.what),
            fix: format!(
                "build with BuildKit (`--builder auto`, the default, or `--builder buildkit`){alternative}"
            ),
        }),
        BuilderKind::BuildKit => too_old(caps.builtin_buildkit()?),
    }
}

/// The secrets `ins` mounts: `(id, required)`. The id defaults to the
/// target's file name, as BuildKit's.
pub(crate) fn secret_mounts(ins: &Instruction) -> Vec<(String, bool)> {
    if ins.keyword != "RUN" {
        return Vec::new();
    }
    let mut out = Vec::new();
    for f in ins.flags.iter().filter(|f| f.name == "mount") {
        let fields = crate::dockerfile::mount_fields(f.value.as_deref().unwrap_or(""));
        let get = |k: &str| fields.iter().find(|m| m.key == k);
        if get("type").map(|m| m.value.as_str()) != Some("secret") {
            continue;
        }
        let id = get("id").map(|m| m.value.clone()).or_else(|| {
            get("target")
                .or_else(|| get("dst"))
                .or_else(|| get("destination"))
                .and_then(|m| m.value.rsplit('/').next().map(str::to_string))
        });
        let required = get("required").is_some_and(|m| matches!(m.value.as_str(), "" | "true"));
        if let Some(id) = id.filter(|i| !i.is_empty()) {
            out.push((id, required));
        }
    }
    out
}

fn short(ins: &Instruction) -> String {
    let first = ins.raw.lines().next().unwrap_or_default().trim();
    let mut s: String = first.chars().take(70).collect();
    if s.len() < first.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DF: &str = "FROM x AS a\n\
        RUN --mount=type=cache,target=/root/.cache echo hi\n\
        RUN --mount=type=secret,id=npm,required=true cat /run/secrets/npm\n\
        RUN <<EOF\necho from heredoc\nEOF\n\
        COPY --link a /a\n\
        COPY --chmod=755 b /b\n\
        FROM x AS plain\nRUN echo ok\n";

    fn caps(builder: BuilderKind, engine: &str) -> Capabilities {
        Capabilities {
            builder,
            engine: engine.to_string(),
        }
    }

    fn lines(r: &[Refusal]) -> Vec<usize> {
        r.iter().map(|r| r.line).collect()
    }

    #[test]
    fn docker_20_10_refuses_heredocs_and_link_naming_line_engine_and_fix() {
        let df = crate::dockerfile::parse(DF).expect("parses");
        let secrets = BTreeSet::from(["npm".to_string()]);
        let r = refusals(
            &df,
            &[0],
            &caps(BuilderKind::BuildKit, "20.10.24+dfsg1"),
            &secrets,
        );
        assert_eq!(lines(&r), [4, 7]);
        let text = r[0].to_string();
        for needle in [
            "line 4",
            "heredoc",
            "v0.10",
            "Docker 23.0",
            "20.10.24",
            "v0.8",
            "upgrade",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from {text}");
        }
        assert!(r[1].to_string().contains("COPY --link a /a"));
        // Docker 26 runs all of it; the stage that is not built is not checked.
        assert!(refusals(&df, &[0], &caps(BuilderKind::BuildKit, "26.1.5"), &secrets).is_empty());
        let classic = refusals(&df, &[1], &caps(BuilderKind::Classic, "26.1.5"), &secrets);
        assert!(classic.is_empty());
    }

    #[test]
    fn the_classic_builder_refuses_every_buildkit_addition() {
        let df = crate::dockerfile::parse(DF).expect("parses");
        let secrets = BTreeSet::from(["npm".to_string()]);
        let r = refusals(&df, &[0], &caps(BuilderKind::Classic, "20.10.24"), &secrets);
        assert_eq!(lines(&r), [2, 3, 4, 7, 8]);
        assert!(r[0].to_string().contains("--builder auto"), "{}", r[0]);
    }

    #[test]
    fn a_required_secret_not_given_is_refused_by_name() {
        let df = crate::dockerfile::parse(DF).expect("parses");
        let r = refusals(
            &df,
            &[0],
            &caps(BuilderKind::BuildKit, "26.1.5"),
            &BTreeSet::new(),
        );
        assert_eq!(lines(&r), [3]);
        assert!(r[0].to_string().contains("secret `npm`"), "{}", r[0]);
        assert!(r[0].fix.contains("--secret id=npm"));
    }

    #[test]
    fn secret_ids_default_to_the_target_file_name() {
        let df = crate::dockerfile::parse(
            "FROM x\nRUN --mount=type=secret,target=/run/secrets/tok,required cat x\n\
             RUN --mount=type=secret,id=opt cat y\n",
        )
        .expect("parses");
        let ins = &df.stages[0].instructions;
        assert_eq!(secret_mounts(&ins[0]), [("tok".to_string(), true)]);
        assert_eq!(secret_mounts(&ins[1]), [("opt".to_string(), false)]);
    }

    #[test]
    fn engine_versions_map_to_their_builtin_buildkit() {
        let v = |e: &str| caps(BuilderKind::BuildKit, e).builtin_buildkit();
        assert_eq!(v("20.10.24+dfsg1"), Some((0, 8)));
        assert_eq!(v("23.0.6"), Some((0, 10)));
        assert_eq!(v("26.1.5+dfsg1"), Some((0, 13)));
        assert_eq!(v("27.3.1"), Some((0, 16)));
        assert_eq!(v("dev"), None);
    }

    #[test]
    fn string_operations_need_docker_26_whichever_the_builder() {
        let df = crate::dockerfile::parse(
            "ARG P=linux/amd64\nARG OS=${P%/*}\nFROM x AS a\nARG TARGETARCH\n\
             ARG DART_ARCH=${TARGETARCH/amd64/x64}\nFROM x AS b\nRUN echo\n",
        )
        .expect("parses");
        let none = BTreeSet::new();
        for builder in [BuilderKind::BuildKit, BuilderKind::Classic] {
            let r = refusals(&df, &[0], &caps(builder, "20.10.24+dfsg1"), &none);
            assert_eq!(lines(&r), [2, 5], "{builder:?}");
            let text = r[1].to_string();
            for needle in [
                "line 5",
                "${TARGETARCH/amd64/x64}",
                "Docker 26.0",
                "--build-arg",
            ] {
                assert!(text.contains(needle), "{needle:?} missing from {text}");
            }
            assert!(refusals(&df, &[0], &caps(builder, "26.1.5"), &none).is_empty());
        }
        // A global ARG is read by every stage, so building `b` alone refuses it too.
        let b = refusals(&df, &[1], &caps(BuilderKind::BuildKit, "20.10.24"), &none);
        assert_eq!(lines(&b), [2]);
    }

    #[test]
    fn add_git_and_checksum_need_buildkit_v0_12() {
        let df = crate::dockerfile::parse(
            "FROM x AS a\nADD https://github.com/moby/buildkit.git#v0.13.0 /bk\n\
             ADD --checksum=sha256:abc https://example.com/f /f\nADD https://example.com/g /g\n",
        )
        .expect("parses");
        let none = BTreeSet::new();
        let classic = refusals(&df, &[0], &caps(BuilderKind::Classic, "26.1.5"), &none);
        assert_eq!(lines(&classic), [2, 3]);
        assert!(classic[0].fix.contains("git clone"), "{}", classic[0]);
        let old = refusals(&df, &[0], &caps(BuilderKind::BuildKit, "24.0.7"), &none);
        assert_eq!(lines(&old), [2, 3]);
        assert!(
            old[0].to_string().contains("Docker 25.0 or newer"),
            "{}",
            old[0]
        );
        assert!(refusals(&df, &[0], &caps(BuilderKind::BuildKit, "25.0.3"), &none).is_empty());
    }
}
