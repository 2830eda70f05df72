//! The Dockerfile as stackbake sees it: parser directives, global `ARG`s and
//! stages, each with its instructions, flags, arguments and heredocs, plus the
//! stage graph (which stages a target needs), a pruned Dockerfile per target,
//! and the build-context sources each stage reads (for fingerprints).
//!
//! No published crate parses everything a real Dockerfile may hold (line
//! continuations with comments inside, the `escape` directive, heredocs, `ARG`
//! expansion in `FROM`, `RUN --mount=from=`) while keeping exact source spans,
//! so this is a focused parser that follows BuildKit's `frontend/dockerfile/parser`
//! rules. It never panics: any `&str` gives `Ok` or an error with a line number.

mod context;
mod expand;
mod features;
mod graph;
mod lexer;
mod parser;
mod pattern;
mod platform;
mod prune;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

pub(crate) use context::ContextSource;
pub(crate) use context::is_git_url;
pub(crate) use features::{Feature, FeatureUse};
pub(crate) use graph::from_values;
pub(crate) use graph::mount_fields;
pub(crate) use graph::{BaseRef, StageGraph};
pub(crate) use parser::parse;
pub(crate) use prune::Rewrites;

/// A Dockerfile problem, with the 1-based line of the instruction at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile line {line}: {message}")]
pub(crate) struct DockerfileError {
    /// 1-based line where the faulty instruction starts.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl DockerfileError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dockerfile {
    /// The escape character (`\` unless the `# escape=` directive says `` ` ``).
    pub escape: char,
    /// `ARG`s declared before the first `FROM`, in order.
    pub global_args: Vec<ArgDecl>,
    /// The stages, in file order (`stages[i].index == i`).
    pub stages: Vec<Stage>,
    /// Parser directives as written (`syntax`, `escape`, `check`), lowercase names.
    pub directives: Vec<Directive>,
    source: String,
    global_arg_instructions: Vec<Instruction>,
    stage_names: std::collections::BTreeMap<String, usize>,
}

/// A parser directive (`# syntax=...`, `# escape=...`, `# check=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// Lowercased directive name.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// 1-based line.
    pub line: usize,
    /// Exact source text of the directive line.
    pub raw: String,
}

/// One name declared by an `ARG` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgDecl {
    /// Variable name.
    pub name: String,
    /// Default as written (quotes and `$VAR`s not yet processed), if any.
    pub default: Option<String>,
    /// 1-based line of the `ARG` instruction.
    pub line: usize,
}

/// A build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stage {
    /// Position among the stages (0-based), usable in `COPY --from=<index>`.
    pub index: usize,
    /// The `AS` name, lowercased (Docker treats stage names case-insensitively).
    pub name: Option<String>,
    /// The base as written, before `ARG` expansion (`${BASE}`, `base`, `scratch`).
    pub from: String,
    /// The `--platform=` value of the `FROM`, as written.
    pub platform: Option<String>,
    /// 1-based line of the `FROM`.
    pub line: usize,
    /// 1-based last line of the stage's last instruction.
    pub end_line: usize,
    /// The instructions after `FROM` (the `FROM` itself is not included).
    pub instructions: Vec<Instruction>,
    pub(crate) from_instruction: Instruction,
}

impl Dockerfile {
    /// The `ARG` instructions before the first `FROM`, in order.
    pub(crate) fn global_arg_instructions(&self) -> &[Instruction] {
        &self.global_arg_instructions
    }
}

impl Stage {
    /// The `FROM` instruction that opens the stage.
    pub(crate) fn opening_instruction(&self) -> &Instruction {
        &self.from_instruction
    }
}

/// One instruction, with its exact source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instruction {
    /// The keyword, uppercased (`RUN`, `COPY`, ...).
    pub keyword: String,
    /// 1-based first line.
    pub line: usize,
    /// 1-based last line (continuations and heredoc bodies included).
    pub end_line: usize,
    /// Exact source text, continuation lines, comments inside them and heredoc bodies included.
    pub raw: String,
    /// Leading `--name[=value]` flags, quotes removed.
    pub flags: Vec<Flag>,
    /// Arguments after the flags.
    pub args: Args,
    /// Heredocs opened on the instruction line (`RUN`, `COPY`, `ADD`), in order.
    pub heredocs: Vec<Heredoc>,
    pub(crate) logical: String,
    pub(crate) segments: Vec<lexer::Segment>,
    pub(crate) span: std::ops::Range<usize>,
}

impl Instruction {
    /// The value of the first flag named `name` (`--name=value`), if any.
    pub(crate) fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.value.as_deref())
    }
}

/// A `--name[=value]` flag of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flag {
    /// Name without the leading `--`, as written.
    pub name: String,
    /// Value after `=` with quotes removed; `None` for a bare `--name`.
    pub value: Option<String>,
    pub(crate) raw: std::ops::Range<usize>,
}

/// The arguments of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Args {
    /// JSON (exec) form: `["a", "b"]`.
    Exec(Vec<String>),
    /// Shell form: the rest of the line after the flags, continuations joined, trimmed.
    Shell(String),
}

/// A heredoc body (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// The body, each line ending in `\n`; leading tabs stripped for `<<-`.
    pub body: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no variable expansion.
    pub expand: bool,
    /// True for `<<-EOF` (leading tabs stripped).
    pub chomp: bool,
}

impl Dockerfile {
    /// The original Dockerfile text.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The index of the stage named `name` (case-insensitive).
    pub(crate) fn stage_index(&self, name: &str) -> Option<usize> {
        self.stage_names.get(&name.to_lowercase()).copied()
    }

    /// The `ARG` names declared inside stage `i`, in order (empty if `i` is out of range).
    #[cfg(test)]
    pub(crate) fn stage_arg_names(&self, i: usize) -> Vec<String> {
        self.stage_args(i).into_iter().map(|a| a.name).collect()
    }

    /// The `ARG` declarations inside stage `i`, in order (empty if `i` is out of range).
    pub(crate) fn stage_args(&self, i: usize) -> Vec<ArgDecl> {
        let Some(stage) = self.stages.get(i) else {
            return Vec::new();
        };
        stage
            .instructions
            .iter()
            .filter(|ins| ins.keyword == "ARG")
            .flat_map(|ins| parser::arg_decls(ins, self.escape).unwrap_or_default())
            .collect()
    }
}
