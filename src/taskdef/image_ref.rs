//! What a task definition's `image` field holds: an image reference (its
//! grammar, hosts and ECR/loopback questions live in [`crate::reference`]),
//! or a CodeDeploy-style placeholder (`<IMAGE1_NAME>`) that CodePipeline
//! substitutes later. Pure string logic.

use std::fmt;

use crate::reference::{ImageRef, ImageRefError};

/// A task definition `image` value: a real reference, or a placeholder such
/// as `<IMAGE1_NAME>` that CodePipeline substitutes later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Image {
    /// A docker/distribution image reference.
    Ref(ImageRef),
    /// A CodeDeploy/CodePipeline placeholder; holds the name between `<` and `>`.
    Placeholder(String),
}

/// Why an `image` value is neither a reference nor a placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ImageError {
    /// Not a valid image reference.
    #[error(transparent)]
    Ref(#[from] ImageRefError),
    /// Something between `<` and `>` that is not a placeholder name.
    #[error(
        "placeholder `{text}` is invalid: a placeholder is `<NAME>` with letters, digits, `_`, `-` or `.`"
    )]
    InvalidPlaceholder {
        /// The whole placeholder text.
        text: String,
    },
}

impl Image {
    /// Parses a task definition `image` value: `<NAME>` is a placeholder, anything
    /// else must follow the reference grammar.
    pub(crate) fn parse(text: &str) -> Result<Self, ImageError> {
        if let Some(inner) = text.strip_prefix('<') {
            let name = inner.strip_suffix('>').unwrap_or("");
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            return if valid {
                Ok(Self::Placeholder(name.to_owned()))
            } else {
                Err(ImageError::InvalidPlaceholder {
                    text: text.to_owned(),
                })
            };
        }
        Ok(Self::Ref(ImageRef::parse(text)?))
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ref(r) => r.fmt(f),
            Self::Placeholder(name) => write!(f, "<{name}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised() {
        assert_eq!(
            Image::parse("<IMAGE1_NAME>"),
            Ok(Image::Placeholder("IMAGE1_NAME".into()))
        );
        assert_eq!(
            Image::parse("<IMAGE1_NAME>").map(|i| i.to_string()),
            Ok("<IMAGE1_NAME>".to_owned())
        );
        assert!(matches!(Image::parse("nginx"), Ok(Image::Ref(_))));
        assert!(ImageRef::parse("<IMAGE1_NAME>").is_err());
    }

    #[test]
    fn invalid_placeholders_and_references_are_rejected_with_reason() {
        for bad in ["<>", "<A B>", "<x", "<é>"] {
            assert!(
                matches!(
                    Image::parse(bad),
                    Err(ImageError::InvalidPlaceholder { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Image::parse("Nginx"),
            Err(ImageError::Ref(ImageRefError::Repository(_)))
        ));
        assert!(matches!(
            Image::parse(""),
            Err(ImageError::Ref(ImageRefError::Empty))
        ));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in ["<", ">", "<é>", "<<>>", "<a>b", "@", "[]/a"] {
            let _ = Image::parse(s);
        }
    }
}
