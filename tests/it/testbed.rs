//! The testbed is real: an Engine that runs arm64 under QEMU, a registry that checks the ECR
//! token, and moto answering the ECR API through the SDK with only the environment.

use super::{command, ecr_client, testbed, unique_repository};

#[test]
fn engine_runs_an_arm64_container() {
    testbed();
    let out = command(
        "docker",
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--platform",
            "linux/arm64",
            "testbase/busybox:arm64",
            "uname",
            "-m",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "aarch64");
}

fn registry_status(credentials: Option<&str>) -> String {
    let url = format!("http://{}/v2/", testbed().registry);
    let mut args = vec!["-s", "-o", "/dev/null", "-w", "%{http_code}"];
    if let Some(credentials) = credentials {
        args.extend(["-u", credentials]);
    }
    args.push(&url);
    String::from_utf8_lossy(&command("curl", &args).stdout).into_owned()
}

#[test]
fn registry_accepts_only_the_ecr_token() {
    let tb = testbed();
    assert_eq!(registry_status(None), "401");
    assert_eq!(registry_status(Some("AWS:wrong")), "401");
    assert_eq!(
        registry_status(Some(&format!("{}:{}", tb.user, tb.password))),
        "200"
    );
}

#[tokio::test]
async fn moto_answers_the_ecr_api_from_the_environment() {
    let name = unique_repository("testbed");
    let ecr = ecr_client().await;
    let created = ecr
        .create_repository()
        .repository_name(&name)
        .send()
        .await
        .expect("CreateRepository on moto");
    assert_eq!(
        created.repository().and_then(|r| r.repository_name()),
        Some(name.as_str())
    );
    let described = ecr
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .expect("DescribeRepositories on moto");
    assert_eq!(described.repositories().len(), 1);
    // The token moto hands out is exactly what the registry accepts.
    let token = ecr.get_authorization_token().send().await.expect("token");
    let encoded = token.authorization_data()[0]
        .authorization_token()
        .unwrap()
        .to_owned();
    let tb = testbed();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        format!("{}:{}", tb.user, tb.password)
    );
}
