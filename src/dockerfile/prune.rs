//! The Dockerfile a build is sent: only the stages one unit needs, in
//! their exact text, with numeric `--from` references renumbered, and
//! optionally [`Rewrites`]: `ARG` lines put first (the platform ARGs the
//! classic builder lacks) and external image references replaced by what
//! the engine must pull (a base resolved to a digest is sent pinned,
//! `name@sha256:…`, so the image built is the one the fingerprint covers;
//! a registry mirror would plug in here too). The user's Dockerfile is
//! never changed.

use std::collections::BTreeMap;
use std::ops::Range;

use super::graph::{FromRef, mount_fields, strip_quotes};
use super::lexer::map_range;
use super::{BaseRef, Dockerfile, Instruction};

/// Maps an external image (its expanded reference) to what the engine is sent.
pub(crate) type ImageRewrite<'a> = &'a dyn Fn(&str) -> Option<String>;

/// How the Dockerfile sent to the engine differs from the stages as written.
#[derive(Default)]
pub(crate) struct Rewrites<'a> {
    /// Lines put before the file's own global `ARG`s.
    pub(crate) prelude: Vec<String>,
    /// The build args, to tell which `FROM` and `--from` values name images.
    pub(crate) build_args: Option<&'a BTreeMap<String, String>>,
    /// What an external image (by its expanded reference) is sent as;
    /// `None` keeps the text as written.
    pub(crate) image: Option<ImageRewrite<'a>>,
}

impl Dockerfile {
    /// A Dockerfile holding only the stages `keep` (dependency-closed): the
    /// parser directives, the global `ARG`s and those stages' exact text in
    /// original order, with numeric `--from` references renumbered. Indices
    /// out of range are ignored; a numeric reference to a stage not kept is
    /// left as written.
    #[cfg(test)]
    pub(crate) fn pruned(&self, keep: &[usize]) -> String {
        self.pruned_with(keep, &Rewrites::default())
    }

    /// `Dockerfile::pruned` with `rewrites` applied.
    pub(crate) fn pruned_with(&self, keep: &[usize], rewrites: &Rewrites<'_>) -> String {
        let mut keep: Vec<usize> = keep
            .iter()
            .copied()
            .filter(|&k| k < self.stages.len())
            .collect();
        keep.sort_unstable();
        keep.dedup();
        let renumber: BTreeMap<usize, usize> = keep
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, new))
            .collect();
        let globals = rewrites
            .build_args
            .and_then(|args| self.global_vars(args).ok());

        let mut out = String::new();
        for d in &self.directives {
            out.push_str(&d.raw);
            out.push('\n');
        }
        for line in &rewrites.prelude {
            out.push_str(line);
            out.push('\n');
        }
        for ins in &self.global_arg_instructions {
            out.push_str(&ins.raw);
            out.push('\n');
        }
        for &k in &keep {
            let stage = &self.stages[k];
            let start = stage.from_instruction.span.start;
            let end = stage
                .instructions
                .last()
                .map_or(stage.from_instruction.span.end, |i| i.span.end);
            let mut edits: Vec<(Range<usize>, String)> = Vec::new();
            if let (Some(globals), Some(image)) = (&globals, rewrites.image) {
                edits.extend(self.image_edits(k, globals, image));
            }
            for ins in &stage.instructions {
                edits.extend(renumber_edits(ins, &renumber));
            }
            edits.sort_by_key(|(r, _)| r.start);
            out.push('\n');
            let mut at = start;
            for (r, text) in edits {
                if r.start < at || r.end > end {
                    continue;
                }
                out.push_str(&self.source[at..r.start]);
                out.push_str(&text);
                at = r.end;
            }
            out.push_str(&self.source[at..end]);
            out.push('\n');
        }
        out
    }

    /// Source edits that replace stage `k`'s external images (its base and
    /// its `--from` images) with what `image` says to send.
    fn image_edits(
        &self,
        k: usize,
        globals: &BTreeMap<String, String>,
        image: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<(Range<usize>, String)> {
        let stage = &self.stages[k];
        let mut out = Vec::new();
        if let Ok(BaseRef::Image(r)) = self.resolve_base(k, globals)
            && let (Some(new), Some(range)) = (image(&r), from_word(&stage.from_instruction))
        {
            out.extend(source_edits(&stage.from_instruction, range, &new));
        }
        for ins in &stage.instructions {
            for (range, value) in from_value_ranges(ins) {
                let Ok(FromRef::Image(r)) = self.resolve_from(&value, k, ins.line, "", globals)
                else {
                    continue;
                };
                if let Some(new) = image(&r) {
                    out.extend(source_edits(ins, range, &new));
                }
            }
        }
        out
    }
}

/// The range (in the logical line) of a `FROM`'s image word.
fn from_word(ins: &Instruction) -> Option<Range<usize>> {
    let line = &ins.logical;
    let after = ins
        .flags
        .last()
        .map_or_else(|| line.find(char::is_whitespace), |f| Some(f.raw.end))?;
    let rest = line.get(after..)?;
    let start = after + (rest.len() - rest.trim_start().len());
    let len = line[start..]
        .find(char::is_whitespace)
        .unwrap_or(line.len() - start);
    (len > 0).then_some(start..start + len)
}

/// Edits of the source that put `text` where `range` of the logical line
/// came from (a value split by a continuation spans several pieces).
fn source_edits(ins: &Instruction, range: Range<usize>, text: &str) -> Vec<(Range<usize>, String)> {
    map_range(&ins.segments, range)
        .into_iter()
        .enumerate()
        .map(|(k, src)| {
            (
                src,
                if k == 0 {
                    text.to_string()
                } else {
                    String::new()
                },
            )
        })
        .collect()
}

/// The `--from` values of `ins` (`COPY`/`ADD --from=`, `RUN --mount=…,from=`)
/// as written, with their ranges in the logical line.
fn from_value_ranges(ins: &Instruction) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    for f in &ins.flags {
        let is_copy_from = matches!(ins.keyword.as_str(), "COPY" | "ADD") && f.name == "from";
        let is_mount = ins.keyword == "RUN" && f.name == "mount";
        if !is_copy_from && !is_mount {
            continue;
        }
        let Some(raw) = ins.logical.get(f.raw.clone()) else {
            continue;
        };
        let Some(eq) = raw.find('=') else {
            continue;
        };
        let vstart = f.raw.start + eq + 1;
        let value = &raw[eq + 1..];
        let (value, vstart) = match strip_quotes(value) {
            Some(v) => (v, vstart + 1),
            None => (value, vstart),
        };
        if is_copy_from {
            out.push((vstart..vstart + value.len(), value.to_string()));
        } else {
            out.extend(
                mount_fields(value)
                    .into_iter()
                    .filter(|m| m.key == "from")
                    .map(|m| {
                        (
                            vstart + m.value_range.start..vstart + m.value_range.end,
                            m.value,
                        )
                    }),
            );
        }
    }
    out
}

/// Source edits that renumber numeric `--from=<n>` / `--mount=...,from=<n>` in `ins`.
fn renumber_edits(
    ins: &Instruction,
    renumber: &BTreeMap<usize, usize>,
) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    for (range, text) in from_value_ranges(ins) {
        let Ok(old) = text.parse::<usize>() else {
            continue;
        };
        let Some(&new) = renumber.get(&old) else {
            continue;
        };
        if new != old {
            out.extend(source_edits(ins, range, &new.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    fn pin(r: &str) -> Option<String> {
        (r != "scratch").then(|| format!("{r}@sha256:{}", "a".repeat(64)))
    }

    #[test]
    fn external_images_are_sent_as_rewritten_and_stages_stay() {
        let src = "# syntax=docker/dockerfile:1\nARG BASE=busybox:1.36\nFROM --platform=$BUILDPLATFORM ${BASE} AS base\nRUN true\nFROM base AS app\nCOPY --from=alpine:3.20 /x /x\nRUN --mount=type=bind,from=tools:1,target=/t \\\n    true\n";
        let df = parse(src).expect("parses");
        let args = BTreeMap::new();
        let rewrites = Rewrites {
            prelude: df.platform_prelude(&args),
            build_args: Some(&args),
            image: Some(&pin),
        };
        let sent = df.pruned_with(&[0, 1], &rewrites);
        let digest = "a".repeat(64);
        assert!(
            sent.starts_with("# syntax=docker/dockerfile:1\nARG BUILDPLATFORM=linux/amd64\nARG BASE=busybox:1.36\n"),
            "{sent}"
        );
        assert!(
            sent.contains(&format!(
                "FROM --platform=$BUILDPLATFORM busybox:1.36@sha256:{digest} AS base"
            )),
            "{sent}"
        );
        assert!(sent.contains("FROM base AS app"), "{sent}");
        assert!(
            sent.contains(&format!("COPY --from=alpine:3.20@sha256:{digest} /x /x")),
            "{sent}"
        );
        assert!(
            sent.contains(&format!("from=tools:1@sha256:{digest},target=/t")),
            "{sent}"
        );
        let re = parse(&sent).expect("what is sent parses");
        assert_eq!(re.stages.len(), 2);
        // Without rewrites, the text is as written.
        assert!(
            df.pruned(&[0, 1])
                .contains("FROM --platform=$BUILDPLATFORM ${BASE} AS base")
        );
    }
}
