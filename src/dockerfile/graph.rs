//! The stage graph: each stage's resolved base (with build-arg overrides of the
//! global `ARG`s), the stages it needs through `FROM <stage>`,
//! `COPY --from=<stage|index>` and `RUN --mount=...,from=<stage>`, and the
//! external images it copies or mounts from. Global `ARG`s start from
//! BuildKit's predefined platform ARGs (`platform.rs`).

use std::collections::BTreeMap;
use std::ops::Range;

use super::expand::expand_word;
use super::{Dockerfile, DockerfileError, Instruction};

/// What a stage is built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BaseRef {
    /// An earlier stage of the same Dockerfile.
    Stage(usize),
    /// An image reference, with `ARG`s expanded.
    Image(String),
    /// `FROM scratch`.
    Scratch,
}

/// Stages, their bases and their direct dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StageGraph {
    /// The base of each stage, by stage index.
    pub bases: Vec<BaseRef>,
    /// Direct stage dependencies of each stage (base stage, `COPY --from`,
    /// `RUN --mount from`), sorted, without duplicates. Always earlier stages.
    pub deps: Vec<Vec<usize>>,
    /// External images each stage reads with `COPY --from=<image>` or
    /// `RUN --mount=...,from=<image>` (expanded, sorted, without duplicates).
    pub images: Vec<Vec<String>>,
}

impl StageGraph {
    /// The stages `target` needs, transitively, including `target`, ascending.
    /// Empty when `target` is out of range.
    pub(crate) fn needed(&self, target: usize) -> Vec<usize> {
        if target >= self.deps.len() {
            return Vec::new();
        }
        let mut seen = vec![false; self.deps.len()];
        let mut stack = vec![target];
        seen[target] = true;
        while let Some(s) = stack.pop() {
            for &d in self.deps.get(s).map(Vec::as_slice).unwrap_or_default() {
                if d < seen.len() && !seen[d] {
                    seen[d] = true;
                    stack.push(d);
                }
            }
        }
        (0..seen.len()).filter(|&i| seen[i]).collect()
    }

    /// External images that the stages in `stages` read through `--from`
    /// (not their bases; see [`StageGraph::bases`]), sorted, without duplicates.
    pub(crate) fn images_of(&self, stages: &[usize]) -> Vec<String> {
        let mut out: Vec<String> = stages
            .iter()
            .filter_map(|&s| self.images.get(s))
            .flatten()
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Where a `--from` value points.
pub(crate) enum FromRef {
    Stage(usize),
    Image(String),
}

/// One `key=value` field of a `--mount` value, with its byte range in that value.
pub(crate) struct MountField {
    pub key: String,
    pub value: String,
    pub value_range: Range<usize>,
}

/// Splits a `--mount` value (CSV, fields optionally double-quoted) into fields.
pub(crate) fn mount_fields(value: &str) -> Vec<MountField> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut push = |range: Range<usize>| {
        let field = &value[range.clone()];
        let (inner, off) = match strip_quotes(field) {
            Some(i) => (i, 1),
            None => (field, 0),
        };
        let (key, val, val_off) = match inner.split_once('=') {
            Some((k, v)) => (k, v, k.len() + 1),
            None => (inner, "", inner.len()),
        };
        let vstart = range.start + off + val_off;
        let (val, vrange) = match strip_quotes(val) {
            Some(v) => (v, vstart + 1..vstart + 1 + v.len()),
            None => (val, vstart..vstart + val.len()),
        };
        out.push(MountField {
            key: key.trim().to_ascii_lowercase(),
            value: val.to_string(),
            value_range: vrange,
        });
    };
    for (i, c) in value.char_indices() {
        if c == '"' {
            in_quote = !in_quote;
        } else if c == ',' && !in_quote {
            push(start..i);
            start = i + 1;
        }
    }
    push(start..value.len());
    out
}

pub(crate) fn strip_quotes(s: &str) -> Option<&str> {
    ['"', '\'']
        .into_iter()
        .find_map(|q| s.strip_prefix(q).and_then(|r| r.strip_suffix(q)))
}

impl Dockerfile {
    /// Values of the global `ARG`s: BuildKit's predefined platform ARGs
    /// (for the build platform, see `platform.rs`), then the declared
    /// defaults (expanded in order), each overridden by `build_args`.
    pub(crate) fn global_vars(
        &self,
        build_args: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DockerfileError> {
        let mut vars = super::platform::predefined(build_args);
        for arg in &self.global_args {
            let value = match (build_args.get(&arg.name), &arg.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(
                    expand_word(d, self.escape, &|n| vars.get(n).cloned()).map_err(|m| {
                        DockerfileError::new(arg.line, format!("ARG {}: {m}", arg.name))
                    })?,
                ),
                (None, None) => None,
            };
            if let Some(v) = value {
                vars.insert(arg.name.clone(), v);
            }
        }
        Ok(vars)
    }

    /// The base of stage `i` given the global variables.
    pub(crate) fn resolve_base(
        &self,
        i: usize,
        globals: &BTreeMap<String, String>,
    ) -> Result<BaseRef, DockerfileError> {
        let Some(stage) = self.stages.get(i) else {
            return Ok(BaseRef::Scratch);
        };
        let expanded = expand_word(&stage.from, self.escape, &|n| globals.get(n).cloned())
            .map_err(|m| DockerfileError::new(stage.line, format!("FROM {}: {m}", stage.from)))?;
        if expanded.is_empty() {
            return Err(DockerfileError::new(
                stage.line,
                format!(
                    "FROM `{}` expands to an empty image name: give the ARG a default or pass --build-arg",
                    stage.from
                ),
            ));
        }
        let lower = expanded.to_lowercase();
        if let Some(j) = self.stage_index(&lower).filter(|&j| j < i) {
            return Ok(BaseRef::Stage(j));
        }
        if expanded == "scratch" {
            return Ok(BaseRef::Scratch);
        }
        Ok(BaseRef::Image(expanded))
    }

    /// Resolves a `--from` value used in stage `i` (instruction at `line`).
    pub(crate) fn resolve_from(
        &self,
        value: &str,
        i: usize,
        line: usize,
        what: &str,
        globals: &BTreeMap<String, String>,
    ) -> Result<FromRef, DockerfileError> {
        let value = if value.contains('$') {
            expand_word(value, self.escape, &|n| globals.get(n).cloned())
                .map_err(|m| DockerfileError::new(line, format!("{what}={value}: {m}")))?
        } else {
            value.to_string()
        };
        let lower = value.to_lowercase();
        if let Some(j) = self.stage_index(&lower) {
            if j >= i {
                return Err(DockerfileError::new(
                    line,
                    format!(
                        "{what}={value} refers to stage `{lower}` (line {}), which is not defined before this one; move that stage above",
                        self.stages[j].line
                    ),
                ));
            }
            return Ok(FromRef::Stage(j));
        }
        if let Ok(n) = value.parse::<i64>() {
            return match usize::try_from(n) {
                Ok(n) if n < i => Ok(FromRef::Stage(n)),
                _ => Err(DockerfileError::new(
                    line,
                    format!(
                        "{what}={value}: stage index out of range; this stage may only use earlier stages 0..{}",
                        i.saturating_sub(1)
                    ),
                )),
            };
        }
        if value.is_empty() {
            return Err(DockerfileError::new(
                line,
                format!("{what} expands to an empty value"),
            ));
        }
        Ok(FromRef::Image(value))
    }

    /// Resolves bases with build-arg overrides and links the stages.
    pub(crate) fn graph(
        &self,
        build_args: &BTreeMap<String, String>,
    ) -> Result<StageGraph, DockerfileError> {
        let globals = self.global_vars(build_args)?;
        let mut bases = Vec::with_capacity(self.stages.len());
        let mut deps = Vec::with_capacity(self.stages.len());
        let mut images = Vec::with_capacity(self.stages.len());
        for (i, stage) in self.stages.iter().enumerate() {
            let base = self.resolve_base(i, &globals)?;
            let mut d = Vec::new();
            let mut imgs = Vec::new();
            if let BaseRef::Stage(j) = base {
                d.push(j);
            }
            for ins in &stage.instructions {
                for (value, what) in from_values(ins) {
                    match self.resolve_from(&value, i, ins.line, what, &globals)? {
                        FromRef::Stage(j) => d.push(j),
                        FromRef::Image(img) => imgs.push(img),
                    }
                }
            }
            d.sort_unstable();
            d.dedup();
            imgs.sort();
            imgs.dedup();
            bases.push(base);
            deps.push(d);
            images.push(imgs);
        }
        Ok(StageGraph {
            bases,
            deps,
            images,
        })
    }
}

/// The `--from` values of an instruction: `COPY --from=` and `RUN --mount=...,from=`.
pub(crate) fn from_values(ins: &Instruction) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for f in &ins.flags {
        match (ins.keyword.as_str(), f.name.as_str(), &f.value) {
            ("COPY" | "ADD", "from", Some(v)) => out.push((v.clone(), "--from")),
            ("RUN", "mount", Some(v)) => {
                for field in mount_fields(v) {
                    if field.key == "from" && !field.value.is_empty() {
                        out.push((field.value, "--mount from"));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_fields_split_csv_with_quotes() {
        let f = mount_fields(r#"type=bind,"source=a,b",from=2,target=/x"#);
        let kv: Vec<(&str, &str)> = f
            .iter()
            .map(|m| (m.key.as_str(), m.value.as_str()))
            .collect();
        assert_eq!(
            kv,
            [
                ("type", "bind"),
                ("source", "a,b"),
                ("from", "2"),
                ("target", "/x")
            ]
        );
        let v = r#"type=bind,"source=a,b",from=2,target=/x"#;
        assert_eq!(&v[f[2].value_range.clone()], "2");
        assert_eq!(&v[f[1].value_range.clone()], "a,b");
    }

    #[test]
    fn needed_out_of_range_is_empty() {
        let g = StageGraph {
            bases: vec![BaseRef::Scratch],
            deps: vec![vec![]],
            images: vec![vec![]],
        };
        assert_eq!(g.needed(0), vec![0]);
        assert!(g.needed(5).is_empty());
    }
}
