//! What a stage reads from the build context, for fingerprints: the
//! variables in scope in a stage (Docker's rules: stage `ARG`s with build-arg
//! overrides or global defaults, `ENV` inherited through stage bases), and the
//! `COPY`/`ADD`/`RUN --mount` sources with those variables expanded.

use std::collections::BTreeMap;

use super::expand::expand_word;
use super::graph::{BaseRef, mount_fields};
use super::parser::{arg_decls, env_pairs};
use super::{Args, Dockerfile, DockerfileError, Instruction, lexer};

/// A source a stage reads from outside the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContextSource {
    /// A path (or glob) in the build context, variables expanded. `.` (or
    /// `/`) means the whole context (a `RUN --mount` without `source`).
    Local {
        /// Path as the instruction names it.
        path: String,
        /// 1-based line of the instruction.
        line: usize,
    },
    /// A URL that `ADD` downloads (`http://`, `https://`) or clones (a git
    /// URL: see [`is_git_url`]).
    Remote {
        /// The URL, variables expanded.
        url: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The `ADD --checksum=` value, as written, if any.
        checksum: Option<String>,
    },
}

/// Whether an `ADD` source is a git repository (BuildKit clones it): `git@…`,
/// `git://…`, `ssh://…`, or an `http(s)://` URL whose path ends in `.git`
/// (before a `#ref[:subdir]` fragment).
pub(crate) fn is_git_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if ["git@", "git://", "ssh://"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return true;
    }
    let path = lower.split('#').next().unwrap_or_default();
    (lower.starts_with("http://") || lower.starts_with("https://")) && path.ends_with(".git")
}

/// Whether an `ADD` source is fetched rather than read from the context.
fn is_remote(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || is_git_url(source)
}

/// Variables in scope while walking a stage: `ENV` wins over `ARG`.
#[derive(Default)]
struct Scope {
    env: BTreeMap<String, String>,
    args: BTreeMap<String, String>,
}

impl Scope {
    fn get(&self, name: &str) -> Option<String> {
        self.env.get(name).or_else(|| self.args.get(name)).cloned()
    }

    fn expand(
        &self,
        word: &str,
        escape: char,
        ins: &Instruction,
    ) -> Result<String, DockerfileError> {
        expand_word(word, escape, &|n| self.get(n))
            .map_err(|m| DockerfileError::new(ins.line, format!("{} `{word}`: {m}", ins.keyword)))
    }
}

impl Dockerfile {
    /// The variables in scope at the end of stage `i`: its `ARG`s (build-arg
    /// override, else default expanded, else the global `ARG`'s value) and the
    /// `ENV`s of the stage and of the stages it is based on. Global `ARG`s not
    /// re-declared in the stage are not in scope (as in Docker).
    #[cfg(test)]
    pub(crate) fn vars_for_stage(
        &self,
        i: usize,
        build_args: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DockerfileError> {
        let scope = self.walk(i, build_args, |_, _| Ok(()))?;
        let mut vars = scope.args;
        vars.extend(scope.env);
        Ok(vars)
    }

    /// The build-context sources `COPY`/`ADD` (without `--from`) and
    /// `RUN --mount` (bind mounts without `from`) read in stage `i`, in order,
    /// variables expanded as Docker would. Heredoc sources are excluded; `ADD`
    /// URLs are reported as [`ContextSource::Remote`].
    pub(crate) fn context_sources(
        &self,
        i: usize,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Vec<ContextSource>, DockerfileError> {
        let escape = self.escape;
        let mut out = Vec::new();
        self.walk(i, build_args, |ins, scope| {
            match ins.keyword.as_str() {
                "COPY" | "ADD" if ins.flag("from").is_none() => {
                    let words: Vec<&str> = match &ins.args {
                        Args::Exec(v) => v.iter().map(String::as_str).collect(),
                        Args::Shell(s) => s.split_whitespace().collect(),
                    };
                    let Some((_, sources)) = words.split_last() else {
                        return Ok(());
                    };
                    for word in sources {
                        if !ins.heredocs.is_empty() && lexer::heredoc_marker(word, escape).is_some()
                        {
                            continue;
                        }
                        let path = scope.expand(word, escape, ins)?;
                        out.push(if ins.keyword == "ADD" && is_remote(&path) {
                            ContextSource::Remote {
                                url: path,
                                line: ins.line,
                                checksum: ins.flag("checksum").map(str::to_string),
                            }
                        } else {
                            ContextSource::Local {
                                path,
                                line: ins.line,
                            }
                        });
                    }
                }
                "RUN" => {
                    for f in ins.flags.iter().filter(|f| f.name == "mount") {
                        let fields = mount_fields(f.value.as_deref().unwrap_or_default());
                        let get = |k: &[&str]| {
                            fields
                                .iter()
                                .find(|m| k.contains(&m.key.as_str()))
                                .map(|m| m.value.as_str())
                        };
                        let kind = get(&["type"]).unwrap_or("bind");
                        if kind != "bind" || get(&["from"]).is_some() {
                            continue;
                        }
                        let source = get(&["source", "src"]).unwrap_or(".");
                        let path = scope.expand(source, escape, ins)?;
                        out.push(ContextSource::Local {
                            path: if path.is_empty() { ".".into() } else { path },
                            line: ins.line,
                        });
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Walks stage `i` with its variable scope, calling `visit` before each
    /// instruction of stage `i` is applied. Ancestor stages contribute `ENV` only.
    fn walk(
        &self,
        i: usize,
        build_args: &BTreeMap<String, String>,
        mut visit: impl FnMut(&Instruction, &Scope) -> Result<(), DockerfileError>,
    ) -> Result<Scope, DockerfileError> {
        if i >= self.stages.len() {
            return Ok(Scope::default());
        }
        let globals = self.global_vars(build_args)?;
        let mut chain = vec![i];
        let mut cur = i;
        while let BaseRef::Stage(j) = self.resolve_base(cur, &globals)? {
            if j >= cur {
                break;
            }
            chain.push(j);
            cur = j;
        }
        let mut env = BTreeMap::new();
        let mut final_scope = Scope::default();
        for &k in chain.iter().rev() {
            let mut scope = Scope {
                env: std::mem::take(&mut env),
                args: BTreeMap::new(),
            };
            for ins in &self.stages[k].instructions {
                if k == i {
                    visit(ins, &scope)?;
                }
                match ins.keyword.as_str() {
                    "ARG" => {
                        for decl in arg_decls(ins, self.escape)? {
                            let value = match (build_args.get(&decl.name), &decl.default) {
                                (Some(v), _) => Some(v.clone()),
                                (None, Some(d)) => Some(scope.expand(d, self.escape, ins)?),
                                (None, None) => globals.get(&decl.name).cloned(),
                            };
                            if let Some(v) = value {
                                scope.args.insert(decl.name, v);
                            }
                        }
                    }
                    "ENV" => {
                        for (name, raw) in env_pairs(ins, self.escape) {
                            let value = scope.expand(&raw, self.escape, ins)?;
                            scope.env.insert(name, value);
                        }
                    }
                    _ => {}
                }
            }
            if k == i {
                final_scope = scope;
            } else {
                env = scope.env;
            }
        }
        Ok(final_scope)
    }
}
