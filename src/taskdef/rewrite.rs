//! Writing the artifact (SPEC step 8): the task definition with pinned images,
//! `imageDetail.json` and `imagedefinitions.json`, as text.
//!
//! Re-serialising a `Value` would reformat the user's file (whitespace,
//! number spelling, escapes). So [`pin_images`] splices new JSON-escaped
//! strings into exactly the byte ranges of the `containerDefinitions[i].image`
//! string tokens, which [`TaskDef::read`] found with the span scanner
//! ([`super::spans`]). Every other byte of the file is kept.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;

use super::spans::line_col;
use super::{TaskDef, TaskdefError};
use crate::reference::ImageRef;

/// Returns the task definition text with the `image` of each container named
/// in `pins` replaced by the given image (e.g. `HOST/repo@sha256:<hex>`).
/// Only those string tokens change; whitespace, key order, unknown keys,
/// number formatting, escapes elsewhere and external containers stay
/// byte-identical. Fails if a pin names an unknown container or is not a
/// valid image reference.
pub(crate) fn pin_images(
    td: &TaskDef,
    pins: &BTreeMap<String, String>,
) -> Result<String, TaskdefError> {
    let containers = td.container_list();
    let mut edits: Vec<(Range<usize>, String)> = Vec::with_capacity(pins.len());
    let mut expected = td.value().clone();
    for (name, image) in pins {
        let Some(index) = containers.iter().position(|c| &c.name == name) else {
            return Err(TaskdefError::UnknownPin {
                container: name.clone(),
                available: td.container_names(),
            });
        };
        ImageRef::parse(image).map_err(|source| TaskdefError::InvalidPin {
            container: name.clone(),
            image: image.clone(),
            source,
        })?;
        let Some(span) = td.image_spans().get(index) else {
            return Err(scan_error(td.raw(), 0, "image span missing"));
        };
        edits.push((span.clone(), Value::String(image.clone()).to_string()));
        if let Some(slot) = expected
            .get_mut("containerDefinitions")
            .and_then(|d| d.get_mut(index))
            .and_then(|c| c.get_mut("image"))
        {
            *slot = Value::String(image.clone());
        }
    }
    edits.sort_by_key(|(span, _)| span.start);
    let raw = td.raw();
    let mut out = String::with_capacity(raw.len() + 64 * edits.len());
    let mut at = 0;
    for (span, replacement) in &edits {
        let Some(keep) = raw.get(at..span.start) else {
            return Err(scan_error(raw, span.start, "overlapping image spans"));
        };
        out.push_str(keep);
        out.push_str(replacement);
        at = span.end;
    }
    out.push_str(raw.get(at..).unwrap_or(""));
    // Self-check: the result must mean exactly the input with the new images.
    let body = out.strip_prefix('\u{feff}').unwrap_or(&out);
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v == expected => Ok(out),
        _ => Err(scan_error(
            raw,
            0,
            "the rewritten file does not match the intended change",
        )),
    }
}

/// `imageDetail.json` for the CodeDeploy ECS blue/green action:
/// `{"ImageURI": "<uri>"}`, pretty-printed, with a trailing newline.
pub(crate) fn image_detail_json(uri: &str) -> String {
    let mut map = serde_json::Map::new();
    map.insert("ImageURI".to_owned(), Value::String(uri.to_owned()));
    format!("{:#}\n", Value::Object(map))
}

/// `imagedefinitions.json` for the CodePipeline ECS standard deploy action:
/// `[{"name": "<container>", "imageUri": "<uri>"}, ...]` in the given order,
/// pretty-printed, with a trailing newline.
pub(crate) fn image_definitions_json(images: &[(String, String)]) -> String {
    let entries = images
        .iter()
        .map(|(name, uri)| {
            let mut map = serde_json::Map::new();
            map.insert("name".to_owned(), Value::String(name.clone()));
            map.insert("imageUri".to_owned(), Value::String(uri.clone()));
            Value::Object(map)
        })
        .collect();
    format!("{:#}\n", Value::Array(entries))
}

fn scan_error(text: &str, offset: usize, message: &str) -> TaskdefError {
    let (line, column) = line_col(text, offset);
    TaskdefError::Scan {
        line,
        column,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_TASKDEF: &str = include_str!("../../taskdef.json");
    const PIN: &str = "127.0.0.1:5000/bash-dog-api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn pins(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Asserts the rewrite properties: the output parses to the input with
    /// only the pinned images changed, and the bytes outside the image
    /// tokens are identical.
    fn check_rewrite(input: &str, p: &BTreeMap<String, String>) -> String {
        let td = match TaskDef::parse(input) {
            Ok(td) => td,
            Err(e) => panic!("{e}"),
        };
        let out = match pin_images(&td, p) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        };
        let mut expected = td.value().clone();
        for (i, c) in td.containers().iter().enumerate() {
            if let Some(new) = p.get(&c.name) {
                expected["containerDefinitions"][i]["image"] = Value::String(new.clone());
            }
        }
        let got: Value = match serde_json::from_str(out.trim_start_matches('\u{feff}')) {
            Ok(v) => v,
            Err(e) => panic!("{e}: {out}"),
        };
        assert_eq!(got, expected);
        // Byte-identical outside the spans: remove each pinned token from
        // both texts and compare what is left.
        let mut rest_in = String::new();
        let mut rest_out = String::new();
        let (mut at_in, mut at_out) = (0, 0);
        for (i, c) in td.containers().iter().enumerate() {
            let Some(new) = p.get(&c.name) else { continue };
            let span = td.image_spans()[i].clone();
            let token = Value::String(new.clone()).to_string();
            rest_in.push_str(&input[at_in..span.start]);
            let out_start = at_out + (span.start - at_in);
            rest_out.push_str(&out[at_out..out_start]);
            assert_eq!(&out[out_start..out_start + token.len()], token);
            at_in = span.end;
            at_out = out_start + token.len();
        }
        rest_in.push_str(&input[at_in..]);
        rest_out.push_str(&out[at_out..]);
        assert_eq!(rest_in, rest_out);
        out
    }

    #[test]
    fn pins_only_the_named_containers_in_the_example() {
        let out = check_rewrite(EXAMPLE_TASKDEF, &pins(&[("bash-dog-api", PIN)]));
        assert!(out.contains(&format!("\"image\": \"{PIN}\"")));
        assert!(out.contains("bash-dog-nginx:latest"));
        assert!(out.contains("public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"));
        assert_eq!(
            out.len(),
            EXAMPLE_TASKDEF.len()
                - "123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest".len()
                + PIN.len()
        );
    }

    #[test]
    fn empty_pins_give_the_input_back() -> Result<(), TaskdefError> {
        let td = TaskDef::parse(EXAMPLE_TASKDEF)?;
        assert_eq!(pin_images(&td, &BTreeMap::new())?, EXAMPLE_TASKDEF);
        Ok(())
    }

    #[test]
    fn minified_input_stays_minified() {
        let input = r#"{"family":"f","containerDefinitions":[{"name":"a","image":"x.io/a:1","cpu":1.50},{"image":"x.io/b","name":"b"}],"cpu":"256"}"#;
        let out = check_rewrite(
            input,
            &pins(&[
                (
                    "a",
                    "x.io/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                ),
                ("b", "x.io/b:2"),
            ]),
        );
        assert_eq!(
            out,
            r#"{"family":"f","containerDefinitions":[{"name":"a","image":"x.io/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","cpu":1.50},{"image":"x.io/b:2","name":"b"}],"cpu":"256"}"#
        );
    }

    #[test]
    fn pretty_input_with_crlf_tabs_and_numbers_is_kept() {
        let input = "{\r\n\t\"cpu\" : 1e3 ,\r\n\t\"containerDefinitions\" : [ {\r\n\t\t\"memory\": 512.0,\r\n\t\t\"image\" :\t\"x.io/a:1\" ,\r\n\t\t\"name\": \"a\"\r\n\t} ]\r\n}\r\n";
        let out = check_rewrite(input, &pins(&[("a", "x.io/a:2")]));
        assert!(out.contains("\"cpu\" : 1e3 ,\r\n"));
        assert!(out.contains("512.0"));
        assert!(out.ends_with("}\r\n"));
    }

    #[test]
    fn escapes_and_unicode_elsewhere_are_untouched() {
        let input = r#"{"description": "caf\u00e9 \"quoted\" \/ \ud83d\ude00 😀 é",
 "containerDefinitions": [
  {"name": "sp\u00e9cial", "im\u0061ge": "x.io/old\/path:1", "environment": [{"name": "A", "value": "tab\there"}]},
  {"name": "ünïcode", "image": "x.io/b:1"}
 ]}"#;
        let out = check_rewrite(
            input,
            &pins(&[("spécial", "x.io/new:1"), ("ünïcode", "x.io/u:2")]),
        );
        assert!(out.contains(r#""im\u0061ge": "x.io/new:1""#), "{out}");
        assert!(out.contains(r#"caf\u00e9 \"quoted\" \/ \ud83d\ude00 😀 é"#));
        assert!(out.contains(r#""tab\there""#));
    }

    #[test]
    fn nested_image_keys_are_not_changed() {
        let input = r#"{
  "image": "top-level.io/not-a-container:1",
  "extra": {"containerDefinitions": [{"name": "a", "image": "decoy.io/x:1"}]},
  "containerDefinitions": [
    {
      "dockerLabels": {"image": "label.io/keep:1"},
      "sidecars": [{"name": "a", "image": "nested.io/keep:1"}],
      "name": "a",
      "image": "real.io/a:1",
      "x": {"image": "deeper.io/keep:1", "containerDefinitions": [{"image": "deepest.io/keep"}]}
    }
  ]
}"#;
        let out = check_rewrite(input, &pins(&[("a", "real.io/a:2")]));
        for keep in [
            "top-level.io/not-a-container:1",
            "decoy.io/x:1",
            "label.io/keep:1",
            "nested.io/keep:1",
            "deeper.io/keep:1",
            "deepest.io/keep",
        ] {
            assert!(out.contains(keep), "{keep} changed");
        }
        assert!(!out.contains("real.io/a:1"));
    }

    /// Image spans are found by structure: keys that look like key paths
    /// (`containerDefinitions[0].image`) are ordinary keys.
    #[test]
    fn keys_that_look_like_paths_are_not_changed() {
        let input = r#"{"containerDefinitions[0].image": "path.io/keep:1",
 "containerDefinitions": [{"name": "a", "image": "real.io/a:1", "x.image": "dot.io/keep:1"}]}"#;
        let out = check_rewrite(input, &pins(&[("a", "real.io/a:2")]));
        assert!(out.contains("path.io/keep:1") && out.contains("dot.io/keep:1"));
        assert!(out.contains("real.io/a:2"), "{out}");
    }

    #[test]
    fn new_image_is_json_escaped() {
        // A valid reference never needs escaping, but the splice must still
        // go through the JSON encoder: check that the token is exactly the
        // encoder's output.
        let out = check_rewrite(
            r#"{"containerDefinitions": [{"name": "a", "image": "x.io/a"}]}"#,
            &pins(&[("a", "localhost:5000/a/b:t")]),
        );
        assert!(out.contains(r#""image": "localhost:5000/a/b:t""#));
    }

    #[test]
    fn bom_is_preserved() {
        let input =
            "\u{feff}{\"containerDefinitions\": [{\"name\": \"a\", \"image\": \"x.io/a\"}]}";
        let out = check_rewrite(input, &pins(&[("a", "x.io/b")]));
        assert!(out.starts_with('\u{feff}'));
    }

    #[test]
    fn unknown_container_and_bad_image_are_errors() -> Result<(), TaskdefError> {
        let td = TaskDef::parse(EXAMPLE_TASKDEF)?;
        let e = pin_images(&td, &pins(&[("api", PIN)]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "cannot pin container `api`: taskdef.json has no such container; its containers are: nginx, bash-dog-api, sidecar, log-router"
            )
        );
        let e = pin_images(&td, &pins(&[("nginx", "Bad Image")]));
        assert!(matches!(e, Err(TaskdefError::InvalidPin { .. })), "{e:?}");
        let e = pin_images(&td, &pins(&[("nginx", "x\"y")]));
        assert!(matches!(e, Err(TaskdefError::InvalidPin { .. })), "{e:?}");
        Ok(())
    }

    /// Mutates the example byte by byte (deterministic pseudo-random edits).
    /// Whatever still parses must pin cleanly: the scanner and serde_json
    /// agree on every input serde_json accepts, and nothing panics.
    #[test]
    fn mutated_inputs_never_panic_and_always_pin_when_parsed() {
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let alphabet = b"{}[]\",:\\ \n0e-.uaimgename\xc3\xa9";
        let mut parsed = 0;
        for _ in 0..3000 {
            let mut bytes = EXAMPLE_TASKDEF.as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = next() % bytes.len();
                let b = alphabet[next() % alphabet.len()];
                match next() % 3 {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, b),
                    _ => bytes[at] = b,
                }
            }
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            let Ok(td) = TaskDef::parse(&text) else {
                continue;
            };
            parsed += 1;
            let all: BTreeMap<String, String> = td
                .container_names()
                .into_iter()
                .map(|n| (n, "x.io/pinned@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned()))
                .collect();
            check_rewrite(&text, &all);
        }
        assert!(parsed > 100, "only {parsed} mutations parsed");
    }

    #[test]
    fn artifact_files() {
        assert_eq!(
            image_detail_json("h/r@sha256:ab"),
            "{\n  \"ImageURI\": \"h/r@sha256:ab\"\n}\n"
        );
        let defs = image_definitions_json(&[
            ("nginx".into(), "h/n@sha256:1".into()),
            ("api".into(), "h/a@sha256:2".into()),
        ]);
        assert_eq!(
            defs,
            "[\n  {\n    \"name\": \"nginx\",\n    \"imageUri\": \"h/n@sha256:1\"\n  },\n  {\n    \"name\": \"api\",\n    \"imageUri\": \"h/a@sha256:2\"\n  }\n]\n"
        );
        assert_eq!(image_definitions_json(&[]), "[]\n");
        let v: Result<Value, _> = serde_json::from_str(&image_detail_json("a\"b"));
        assert_eq!(
            v.ok()
                .and_then(|v| v["ImageURI"].as_str().map(str::to_owned))
                .as_deref(),
            Some("a\"b")
        );
    }
}
