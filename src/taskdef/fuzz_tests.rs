//! Property tests of the task definition parser and its image-pinning
//! rewriter (the runner and its bounds: `crate::testing::fuzz`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

use crate::taskdef::TaskDef;
use crate::taskdef::rewrite::pin_images;
use crate::testing::fuzz::{deep, fuzz, no_panic, replay_corpus, replay_known_bugs};

/// A JSON string literal of `s`, each character randomly written plainly
/// or as a `\u` escape (the scanner must decode keys and values).
fn json_string(s: &str, escape_mask: u64) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        let escape_this = (escape_mask >> (i % 64)) & 1 == 1;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if escape_this => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `v` as JSON with generated whitespace and escapes.
fn write_json(v: &Value, ws: &[&str], mask: u64, k: &mut usize, out: &mut String) {
    let space = |out: &mut String, k: &mut usize| {
        *k += 1;
        out.push_str(ws[*k % ws.len()]);
    };
    match v {
        Value::Object(map) => {
            out.push('{');
            for (i, (key, val)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(out, k);
                out.push_str(&json_string(key, mask.rotate_left(i as u32)));
                space(out, k);
                out.push(':');
                space(out, k);
                write_json(val, ws, mask.rotate_left(7 + i as u32), k, out);
            }
            space(out, k);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, val) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(out, k);
                write_json(val, ws, mask.rotate_left(13 + i as u32), k, out);
            }
            space(out, k);
            out.push(']');
        }
        Value::String(s) => out.push_str(&json_string(s, mask)),
        other => out.push_str(&other.to_string()),
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "[a-z\"\\\\é/ ]{0,8}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn image_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest",
            "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
            "busybox",
            "nginx:1.25@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "localhost:5000/a/b",
            "Image With Spaces",
            "é/\"q\"",
            "",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9./:@-]{1,30}",
    ]
}

/// A task definition value: containers with names, images and extra fields.
fn taskdef_value() -> impl Strategy<Value = Value> {
    let container = (
        "[a-z][a-z0-9é\"\\\\-]{0,8}",
        image_string(),
        prop::collection::vec(("[a-zA-Z]{1,8}", json_value()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(name, image, extra, image_first)| {
            let mut m = serde_json::Map::new();
            if image_first {
                m.insert("image".into(), Value::String(image.clone()));
            }
            m.insert("name".into(), Value::String(name));
            for (k, v) in extra {
                if k != "name" && k != "image" {
                    m.insert(k, v);
                }
            }
            if !image_first {
                m.insert("image".into(), Value::String(image));
            }
            Value::Object(m)
        });
    (
        prop::collection::vec(container, 0..5),
        prop::collection::vec(("[a-zA-Z]{1,10}", json_value()), 0..4),
        any::<bool>(),
    )
        .prop_map(|(containers, extra, defs_last)| {
            let mut m = serde_json::Map::new();
            if !defs_last {
                m.insert(
                    "containerDefinitions".into(),
                    Value::Array(containers.clone()),
                );
            }
            for (k, v) in extra {
                if k != "containerDefinitions" {
                    m.insert(k, v);
                }
            }
            if defs_last {
                m.insert("containerDefinitions".into(), Value::Array(containers));
            }
            Value::Object(m)
        })
}

/// Task definition text: generated values written with random whitespace
/// and escapes, sometimes damaged (a byte range cut out or a string
/// inserted), sometimes arbitrary text.
fn written_taskdef() -> impl Strategy<Value = String> {
    (
        taskdef_value(),
        prop::collection::vec(
            prop::sample::select(vec!["", " ", "\n", "\n  ", "\t", "\r\n"]),
            1..5,
        ),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(v, ws, mask, bom)| {
            let mut out = if bom {
                "\u{feff}".to_owned()
            } else {
                String::new()
            };
            let mut k = 0;
            write_json(&v, &ws, mask, &mut k, &mut out);
            out
        })
}

fn taskdef_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => written_taskdef(),
        2 => (written_taskdef(), any::<prop::sample::Index>(), any::<prop::sample::Index>(), prop::sample::select(vec![
            "", "\"", "\\", "{", "}", "[", "]", ",", ":", "\"image\":\"x\",", "\"name\":\"n\",",
            "\"containerDefinitions\":[],", "\\u00", "\u{0}", "é",
        ]))
            .prop_map(|(text, a, b, insert)| {
                let chars: Vec<char> = text.chars().collect();
                if chars.is_empty() {
                    return insert.to_owned();
                }
                let (i, j) = (a.index(chars.len()), b.index(chars.len()));
                let (i, j) = (i.min(j), i.max(j).min(i + 3));
                let mut s: String = chars[..i].iter().collect();
                s.push_str(insert);
                s.extend(&chars[j..]);
                s
            }),
        1 => any::<String>(),
    ]
}

const PIN: &str = "127.0.0.1:5000/bash-dog-api@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const PIN2: &str =
    "127.0.0.1:5000/other@sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Parse; pin a subset of the containers; the output re-parses to the
/// original value with exactly those images replaced; names unchanged.
fn check_taskdef(text: &str, pick: u64) -> Result<(), TestCaseError> {
    let parsed = no_panic("TaskDef::parse", || TaskDef::parse(text))?;
    let Ok(td) = parsed else { return Ok(()) };
    deep();
    prop_assert_eq!(td.raw(), text);
    let containers = td.containers();
    let mut pins = BTreeMap::new();
    for (i, c) in containers.iter().enumerate() {
        if (pick >> (i % 64)) & 1 == 1 {
            pins.insert(c.name.clone(), PIN.to_owned());
        }
    }
    let out = no_panic("pin_images", || pin_images(&td, &pins))?;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "pin_images refused a parsed task definition: {e}"
            )));
        }
    };
    let again = match TaskDef::parse(&out) {
        Ok(t) => t,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "the output does not parse: {e}\n{out}"
            )));
        }
    };
    let mut expected = td.value().clone();
    if let Some(defs) = expected
        .get_mut("containerDefinitions")
        .and_then(Value::as_array_mut)
    {
        for def in defs {
            let pinned = def
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| pins.contains_key(n));
            if pinned && let Some(slot) = def.get_mut("image") {
                *slot = Value::String(PIN.to_owned());
            }
        }
    }
    prop_assert_eq!(
        again.value(),
        &expected,
        "pinning changed more than the images:\n{}",
        out
    );
    prop_assert_eq!(again.container_names(), td.container_names());
    if pins.is_empty() {
        prop_assert_eq!(&out, text, "no pin, but the text changed");
    }
    // Only the image tokens change, byte for byte: pinning the output again
    // with another image must change exactly the first pin's tokens.
    if !pins.is_empty() {
        let pins2: BTreeMap<String, String> =
            pins.keys().map(|k| (k.clone(), PIN2.to_owned())).collect();
        let out2 = pin_images(&again, &pins2)
            .map_err(|e| TestCaseError::fail(format!("second pin_images failed: {e}\n{out}")))?;
        let (t1, t2) = (json!(PIN).to_string(), json!(PIN2).to_string());
        prop_assert_eq!(
            out2,
            out.replace(&t1, &t2),
            "bytes outside the image values changed"
        );
    }
    // Unknown containers and invalid images are errors, not panics.
    let unknown = BTreeMap::from([("no-such-container-\u{1}".to_owned(), PIN.to_owned())]);
    prop_assert!(no_panic("pin_images(unknown)", || pin_images(&td, &unknown))?.is_err());
    if let Some(c) = containers.first() {
        for bad in ["", "UPPER/Case", "a b", "x@sha256:short", "\u{0}"] {
            let pins = BTreeMap::from([(c.name.clone(), bad.to_owned())]);
            let _ = no_panic("pin_images(bad image)", || pin_images(&td, &pins))?;
        }
    }
    Ok(())
}

#[test]
fn taskdef_parser_and_pin_images_hold_on_generated_input() {
    fuzz("taskdef", (taskdef_text(), any::<u64>()), |(t, pick)| {
        check_taskdef(t, *pick)
    });
}

/// A corpus file: all containers pinned, then containers 0 and 2.
fn check_corpus_file(text: &str) -> Result<(), TestCaseError> {
    check_taskdef(text, u64::MAX)?;
    check_taskdef(text, 0b101)
}

/// Every file in `tests/fuzz-corpus/taskdef/` passes the same checks.
#[test]
fn corpus_replays_without_panics() {
    replay_corpus("taskdef", check_corpus_file);
}

/// The corpus' `known-bug-*` files (see `crate::testing::fuzz`).
#[test]
#[ignore = "known failing inputs in tests/fuzz-corpus/taskdef/known-bug-*: see the report of issue 6"]
fn known_bugs_still_fail() {
    replay_known_bugs("taskdef", check_corpus_file);
}
