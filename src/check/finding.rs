//! One diagnostic of `stackbake check` ([`Finding`]) and its two renderings:
//! compiler-style text for people ([`render_human`]) and the versioned JSON
//! document for machines ([`render_json`]).

use serde_json::{Value, json};

/// How bad a finding is: any error makes `check` exit 2 and `build` refuse to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    /// The pipeline will fail (at build, register or deploy time).
    Error,
    /// Probably a mistake, but the pipeline may still work.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }
}

/// One problem found in one file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The file, as given relative to the project directory.
    pub file: String,
    /// 1-based line (1 when the whole file is at fault).
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Error or warning.
    pub severity: Severity,
    /// Stable kebab-case rule id, grouped by prefix (`taskdef/output-only-field`).
    pub rule: &'static str,
    /// One line saying what is wrong.
    pub message: String,
    /// One line saying how to fix it.
    pub help: String,
}

impl Finding {
    /// An error finding for a YAML file that does not parse, at the
    /// parser's position (1:1 when it has none).
    pub(crate) fn invalid_yaml(
        file: &str,
        rule: &'static str,
        what: &str,
        location: Option<(usize, usize)>,
        message: &str,
    ) -> Finding {
        let pos = location.map_or((1, 1), |(line, col)| (line.max(1), col.max(1)));
        Finding::new(
            file,
            pos,
            Severity::Error,
            rule,
            format!("{what} is not valid YAML: {message}"),
            "fix the YAML syntax (indent with spaces, not tabs)",
        )
    }

    /// A finding at `line:col` of `file`.
    pub(crate) fn new(
        file: &str,
        (line, col): (usize, usize),
        severity: Severity,
        rule: &'static str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_owned(),
            line,
            col,
            severity,
            rule,
            message: message.into(),
            help: help.into(),
        }
    }
}

/// Counts of errors and warnings.
fn counts(findings: &[Finding]) -> (usize, usize) {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    (errors, findings.len() - errors)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Compiler-style text, one block per finding, then a summary line:
///
/// ```text
/// error[network/duplicate-port]: containers `a` and `b` both listen on port 80
///   --> taskdef.json:12:7
///   = help: ...
///
/// 1 error, 0 warnings
/// ```
pub(crate) fn render_human(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}[{}]: {}\n  --> {}:{}:{}\n",
            f.severity.as_str(),
            f.rule,
            f.message,
            f.file,
            f.line,
            f.col
        ));
        if !f.help.is_empty() {
            out.push_str(&format!("  = help: {}\n", f.help));
        }
        out.push('\n');
    }
    let (errors, warnings) = counts(findings);
    out.push_str(&format!(
        "{}, {}\n",
        plural(errors, "error"),
        plural(warnings, "warning")
    ));
    out
}

/// The JSON document `check --json` prints:
/// `{"schema_version":1,"findings":[{file,line,col,severity,rule,message,help}],"errors":N,"warnings":M}`.
pub(crate) fn render_json(findings: &[Finding]) -> String {
    let list: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "file": f.file,
                "line": f.line,
                "col": f.col,
                "severity": f.severity.as_str(),
                "rule": f.rule,
                "message": f.message,
                "help": f.help,
            })
        })
        .collect();
    let (errors, warnings) = counts(findings);
    let doc = json!({
        "schema_version": 1,
        "findings": list,
        "errors": errors,
        "warnings": warnings,
    });
    format!("{doc}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Finding> {
        vec![
            Finding::new(
                "taskdef.json",
                (12, 7),
                Severity::Error,
                "network/duplicate-port",
                "two containers listen on 80",
                "give each its own port",
            ),
            Finding::new(
                "appspec.yaml",
                (1, 1),
                Severity::Warning,
                "placeholder/todo",
                "TODO left",
                "",
            ),
        ]
    }

    #[test]
    fn human_output_is_compiler_style_with_summary() {
        let text = render_human(&sample());
        assert!(text.starts_with(
            "error[network/duplicate-port]: two containers listen on 80\n  --> taskdef.json:12:7\n  = help: give each its own port\n"
        ), "{text}");
        assert!(text.contains("warning[placeholder/todo]: TODO left\n  --> appspec.yaml:1:1\n\n"));
        assert!(text.ends_with("1 error, 1 warning\n"), "{text}");
        assert_eq!(render_human(&[]), "0 errors, 0 warnings\n");
    }

    #[test]
    fn json_output_has_schema_and_counts() -> Result<(), serde_json::Error> {
        let v: Value = serde_json::from_str(&render_json(&sample()))?;
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["warnings"], 1);
        assert_eq!(v["findings"][0]["rule"], "network/duplicate-port");
        assert_eq!(v["findings"][0]["line"], 12);
        assert_eq!(v["findings"][0]["col"], 7);
        assert_eq!(v["findings"][1]["severity"], "warning");
        Ok(())
    }
}
