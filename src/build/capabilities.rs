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
//! (`ADD --checksum`), 26 v0.13, 27.3 v0.16 (secrets as environment
//! variables). The classic builder runs none of BuildKit's additions.

use std::collections::BTreeSet;
use std::fmt;

use crate::dockerfile::{Dockerfile, Instruction};

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
    what: &'static str,
    needs: Version,
    docker: &'static str,
    alternative: &'static str,
}

const HEREDOC: Feature = Feature {
    what: "a heredoc (`<<EOF`)",
    needs: (0, 10),
    docker: "23.0",
    alternative: "or write the script on the instruction line (`RUN a && b`)",
};
const LINK: Feature = Feature {
    what: "`--link`",
    needs: (0, 10),
    docker: "23.0",
    alternative: "or remove `--link` (the copy is then not independent of earlier layers)",
};
const CHECKSUM: Feature = Feature {
    what: "`ADD --checksum`",
    needs: (0, 12),
    docker: "25.0",
    alternative: "or remove `--checksum`",
};
const SECRET_ENV: Feature = Feature {
    what: "a secret mounted as an environment variable (`env=`)",
    needs: (0, 16),
    docker: "27.3",
    alternative: "or mount it as a file (`target=/run/secrets/ID`) and read it there",
};
const MOUNT: Feature = Feature {
    what: "`RUN --mount`",
    needs: (0, 6),
    docker: "18.09",
    alternative: "",
};

/// The refusals for building `stages` of `df` with `caps` and the secret
/// ids in `secrets`, in line order.
pub(crate) fn refusals(
    df: &Dockerfile,
    stages: &[usize],
    caps: &Capabilities,
    secrets: &BTreeSet<String>,
) -> Vec<Refusal> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for &s in stages {
        let Some(stage) = df.stages.get(s) else {
            continue;
        };
        for ins in &stage.instructions {
            if !seen.insert(ins.line) {
                continue;
            }
            for feature in features(ins) {
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
    }
    out.sort_by_key(|r| r.line);
    out
}

/// The features `ins` uses that not every builder runs.
fn features(ins: &Instruction) -> Vec<Feature> {
    let mut out = Vec::new();
    if !ins.heredocs.is_empty() {
        out.push(HEREDOC);
    }
    let kw = ins.keyword.as_str();
    for f in &ins.flags {
        match (kw, f.name.as_str()) {
            ("COPY" | "ADD", "link") if f.value.as_deref() != Some("false") => out.push(LINK),
            ("ADD", "checksum") => out.push(CHECKSUM),
            ("RUN", "mount") => {
                out.push(MOUNT);
                let fields = crate::dockerfile::mount_fields(f.value.as_deref().unwrap_or(""));
                let secret = fields
                    .iter()
                    .any(|m| m.key == "type" && m.value == "secret");
                if secret && fields.iter().any(|m| m.key == "env") {
                    out.push(SECRET_ENV);
                }
            }
            ("RUN", "network" | "security") | ("COPY" | "ADD", "chmod") => out.push(Feature {
                what: "this flag",
                needs: (0, 6),
                docker: "18.09",
                alternative: "",
            }),
            _ => {}
        }
    }
    out
}

fn refuse(ins: &Instruction, f: &Feature, caps: &Capabilities) -> Option<Refusal> {
    let on = caps.describe();
    match caps.builder {
        BuilderKind::Classic => Some(Refusal {
            line: ins.line,
            instruction: short(ins),
            problem: format!("{} needs BuildKit, and this build uses {on}", f.what),
            fix: "build with BuildKit (`--builder auto`, the default, or `--builder buildkit`)"
                .to_string(),
        }),
        BuilderKind::BuildKit => {
            let have = caps.builtin_buildkit()?;
            (have < f.needs).then(|| Refusal {
                line: ins.line,
                instruction: short(ins),
                problem: format!(
                    "{} needs BuildKit v{}.{} (Docker {} or newer), and this engine has {on}",
                    f.what, f.needs.0, f.needs.1, f.docker
                ),
                fix: format!(
                    "upgrade the engine (in CodeBuild: a newer build image){}{}",
                    if f.alternative.is_empty() { "" } else { ", " },
                    f.alternative
                ),
            })
        }
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
}
