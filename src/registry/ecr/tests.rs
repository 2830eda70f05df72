//! Unit tests of the AWS side: region, token decoding, endpoints and
//! repository rules.

use super::*;

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn region_prefers_aws_region_then_default_then_hint() {
    let hint = Some("eu-west-1".to_owned());
    assert_eq!(
        resolve_region(
            env(&[("AWS_REGION", "us-east-2"), ("AWS_DEFAULT_REGION", "x")]),
            hint.clone()
        )
        .unwrap(),
        "us-east-2"
    );
    assert_eq!(
        resolve_region(env(&[("AWS_DEFAULT_REGION", "ap-south-1")]), hint.clone()).unwrap(),
        "ap-south-1"
    );
    assert_eq!(
        resolve_region(env(&[("AWS_REGION", " ")]), hint.clone()).unwrap(),
        "eu-west-1"
    );
}

#[test]
fn no_region_anywhere_says_how_to_set_it() {
    let err = resolve_region(env(&[]), None).unwrap_err();
    assert!(matches!(err, AwsError::NoRegion));
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
    assert!(resolve_region(env(&[]), Some(String::new())).is_err());
}

#[test]
fn authorization_token_decodes_to_user_and_password() {
    let c = decode_authorization_token("QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu").unwrap();
    assert_eq!(c.username, "AWS");
    assert_eq!(c.password.expose(), "123456789012-auth-token");
    assert!(!format!("{c:?}").contains("auth-token"));
    // A colon inside the password is kept.
    let b64 = base64::engine::general_purpose::STANDARD.encode("AWS:a:b");
    assert_eq!(
        decode_authorization_token(&b64).unwrap().password.expose(),
        "a:b"
    );
}

#[test]
fn malformed_authorization_tokens_are_errors_without_the_token() {
    let enc = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    for bad in [
        "!!!".to_owned(),
        enc(b"nocolon"),
        enc(b":pw"),
        enc(b"AWS:"),
        enc(&[0xff, b':', b'x']),
    ] {
        let err = decode_authorization_token(&bad).unwrap_err();
        assert!(!err.contains("nocolon"), "{err}");
    }
}

#[test]
fn proxy_endpoint_becomes_a_host() {
    assert_eq!(
        host_of_endpoint("https://123456789012.dkr.ecr.us-east-1.amazonaws.com").as_deref(),
        Some("123456789012.dkr.ecr.us-east-1.amazonaws.com")
    );
    assert_eq!(
        host_of_endpoint("http://127.0.0.1:5000/").as_deref(),
        Some("127.0.0.1:5000")
    );
    assert_eq!(host_of_endpoint("https://"), None);
    assert_eq!(host_of_endpoint(""), None);
}

#[test]
fn repository_missing_names_them_and_the_flag() {
    let e = AwsError::RepositoryMissing {
        region: "us-east-2".into(),
        repos: vec!["bash-dog-api".into(), "bash-dog-nginx".into()],
    };
    let s = e.to_string();
    assert!(
        s.contains("bash-dog-api, bash-dog-nginx") && s.contains("--create-repos"),
        "{s}"
    );
    let e = AwsError::Ecr {
        operation: "CreateRepository",
        region: "r".into(),
        repository: Some("x".into()),
        detail: "d".into(),
    };
    assert!(
        e.to_string()
            .contains("ECR CreateRepository for repository x failed"),
        "{e}"
    );
}
