//! `scheduler collect`, `dispatch` and `runners` against an in-process server speaking the
//! GitHub REST endpoints they use: artifact lists paginated with `Link` headers, artifact
//! downloads redirected (302) to a blob URL that refuses our token, workflow dispatch (204),
//! runs, jobs and runners lists, and 401 / 404 / rate-limit answers.

use crate::util::write;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "test-token";

/// What the fake GitHub serves and what it was sent.
#[derive(Default)]
struct Fake {
    /// `http://127.0.0.1:PORT`
    base: String,
    /// Artifacts of run 42: (id, name, expired, zip bytes).
    artifacts: Vec<(u64, String, bool, Vec<u8>)>,
    /// Bodies of workflow dispatches received.
    dispatches: Vec<Value>,
    /// Blob downloads that arrived with an Authorization header (must stay 0).
    leaked_auth: usize,
    /// Requests per path.
    hits: HashMap<String, usize>,
}

type Shared = Arc<Mutex<Fake>>;

fn gh_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest"})),
    )
        .into_response()
}

/// A 401 answer unless the request carries our token. Tokens carrying [`ECHO_401`]'s or
/// [`ECHO_500`]'s marker get a 401 or 500 whose message echoes every request header.
fn unauthorized(h: &HeaderMap) -> Option<Response> {
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let echo = || {
        h.iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if auth.contains("echo401") {
        return Some(gh_error(
            StatusCode::UNAUTHORIZED,
            &format!("Bad credentials (you sent {})", echo()),
        ));
    }
    if auth.contains("echo500") {
        return Some(gh_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("internal error handling {}", echo()),
        ));
    }
    let ok = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}") || v == format!("token {TOKEN}"));
    (!ok).then(|| gh_error(StatusCode::UNAUTHORIZED, "Bad credentials"))
}

/// Run 403 answers as a rate-limited API does; run 404 does not exist.
fn special_run(run: u64) -> Option<Response> {
    match run {
        403 => Some(
            (
                StatusCode::FORBIDDEN,
                [
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000000"),
                ],
                Json(json!({"message": "API rate limit exceeded for user ID 1."})),
            )
                .into_response(),
        ),
        404 => Some(gh_error(StatusCode::NOT_FOUND, "Not Found")),
        _ => None,
    }
}

async fn list_artifacts(
    State(s): State<Shared>,
    UrlPath((_o, _r, run)): UrlPath<(String, String, u64)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    if let Some(r) = special_run(run) {
        return r;
    }
    let s = s.lock().unwrap();
    // Two per page whatever per_page says, so three pages get walked.
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let all = &s.artifacts;
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * 2)
        .take(2)
        .map(|(id, name, expired, zip)| {
            json!({"id": id, "node_id": "x", "name": name, "size_in_bytes": zip.len(),
                   "url": format!("{}/repos/o/r/actions/artifacts/{id}", s.base),
                   "archive_download_url": format!("{}/repos/o/r/actions/artifacts/{id}/zip", s.base),
                   "expired": expired, "created_at": "2025-11-20T00:00:00Z"})
        })
        .collect();
    let pages = all.len().div_ceil(2);
    let mut headers = HeaderMap::new();
    if page < pages {
        let url = format!("{}/repos/o/r/actions/runs/{run}/artifacts", s.base);
        headers.insert(
            "link",
            format!(
                "<{url}?per_page=100&page={}>; rel=\"next\", <{url}?per_page=100&page={pages}>; rel=\"last\"",
                page + 1
            )
            .parse()
            .unwrap(),
        );
    }
    (
        headers,
        Json(json!({"total_count": all.len(), "artifacts": items})),
    )
        .into_response()
}

async fn artifact_zip(
    State(s): State<Shared>,
    UrlPath((_o, _r, id)): UrlPath<(String, String, u64)>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    let s = s.lock().unwrap();
    match s.artifacts.iter().find(|a| a.0 == id) {
        Some((_, _, true, _)) => gh_error(StatusCode::GONE, "Artifact has expired"),
        Some(_) => (
            StatusCode::FOUND,
            [("location", format!("{}/blob/{id}?sig=abc", s.base))],
        )
            .into_response(),
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// The pre-signed blob URL: like cloud storage, it refuses a request carrying a token.
async fn blob(State(s): State<Shared>, UrlPath(id): UrlPath<u64>, h: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    if h.contains_key("authorization") {
        s.leaked_auth += 1;
        return (StatusCode::BAD_REQUEST, "authorization header not allowed").into_response();
    }
    match s.artifacts.iter().find(|a| a.0 == id) {
        Some(a) => ([("content-type", "application/zip")], a.3.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn jobs(UrlPath((_o, _r, run)): UrlPath<(String, String, u64)>, h: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    if let Some(r) = special_run(run) {
        return r;
    }
    Json(json!({"total_count": 3, "jobs": [
        {"id": 1, "name": "plan", "status": "completed", "conclusion": "success", "html_url": "https://gh/j/1"},
        {"id": 2, "name": "bench-0 (mi355x, 1024, 1024, 8)", "status": "completed", "conclusion": "failure", "html_url": "https://gh/j/2"},
        {"id": 3, "name": "collect / collect", "status": "in_progress", "conclusion": null, "html_url": "https://gh/j/3"}
    ]}))
    .into_response()
}

async fn runs(
    State(s): State<Shared>,
    UrlPath((_o, _r, wf)): UrlPath<(String, String, String)>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    let mut s = s.lock().unwrap();
    *s.hits.entry(format!("runs/{wf}")).or_default() += 1;
    let mut list = vec![
        json!({"id": 7, "html_url": "https://github.com/o/r/actions/runs/7", "status": "completed"}),
    ];
    // The new run shows up one look after the dispatch, as it does on GitHub.
    if !s.dispatches.is_empty() && s.hits[&format!("runs/{wf}")] > 2 {
        list.insert(0, json!({"id": 8, "html_url": "https://github.com/o/r/actions/runs/8", "status": "queued"}));
    }
    Json(json!({"total_count": list.len(), "workflow_runs": list})).into_response()
}

async fn dispatch(
    State(s): State<Shared>,
    UrlPath((_o, _r, wf)): UrlPath<(String, String, String)>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    if wf != "dispatch.yml" {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    }
    s.lock().unwrap().dispatches.push(body);
    StatusCode::NO_CONTENT.into_response()
}

async fn runners(h: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    let label = |n: &str| json!({"id": 1, "name": n, "type": "custom"});
    Json(json!({"total_count": 3, "runners": [
        {"id": 1, "name": "mi355x-amds_00", "os": "linux", "status": "online", "busy": false,
         "labels": [label("self-hosted"), label("mi355x")]},
        {"id": 2, "name": "b200-nv_0", "os": "linux", "status": "offline", "busy": false,
         "labels": [label("self-hosted"), label("b200")]},
        {"id": 3, "name": "h200-cw_0", "os": "linux", "status": "online", "busy": true,
         "labels": [label("self-hosted"), label("h200")]}
    ]}))
    .into_response()
}

/// Start the fake on an ephemeral loopback port in its own thread; returns its state.
fn start(artifacts: Vec<(u64, String, bool, Vec<u8>)>) -> Shared {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state: Shared = Arc::new(Mutex::new(Fake {
        base,
        artifacts,
        ..Fake::default()
    }));
    let app = Router::new()
        .route(
            "/repos/{o}/{r}/actions/runs/{run}/artifacts",
            get(list_artifacts),
        )
        .route(
            "/repos/{o}/{r}/actions/artifacts/{id}/zip",
            get(artifact_zip),
        )
        .route("/blob/{id}", get(blob))
        .route("/repos/{o}/{r}/actions/runs/{run}/jobs", get(jobs))
        .route("/repos/{o}/{r}/actions/workflows/{wf}/runs", get(runs))
        .route(
            "/repos/{o}/{r}/actions/workflows/{wf}/dispatches",
            post(dispatch),
        )
        .route("/repos/{o}/{r}/actions/runners", get(runners))
        .with_state(state.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use hyper_util::rt::TokioIo;
            use hyper_util::service::TowerToHyperService;
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((sock, _)) = l.accept().await else {
                    continue;
                };
                let svc = TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
    });
    state
}

/// A zip holding `files` (path, content).
pub fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (p, text) in files {
        w.start_file(*p, opts).unwrap();
        w.write_all(text.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// An agg.json for dsr1 fp4 on mi355x at `conc`.
fn agg_json(conc: u32) -> String {
    let b = crate::report::shipped();
    let row = crate::report::point("dsr1", conc, 60.0, 900.0, &b);
    serde_json::to_string_pretty(&row).unwrap()
}

fn scheduler(base: &str, token: Option<&str>, args: &[&str], dir: &Path) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scheduler"));
    c.args(args)
        .current_dir(dir)
        .env("GITHUB_API_URL", base)
        .env("GITHUB_REPOSITORY", "o/r")
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_OUTPUT")
        .env(
            "INFMAX_BASELINES",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines"),
        );
    if let Some(t) = token {
        c.env("GITHUB_TOKEN", t);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn sweep_artifacts() -> Vec<(u64, String, bool, Vec<u8>)> {
    let ok4 = "dsr1_1k1k_fp4_sglang_tp8_ep1_dpa_false_conc4_mi355x-amds_00";
    let ok8 = "dsr1_1k1k_fp4_sglang_tp8_ep1_dpa_false_conc8_mi355x-amds_00";
    let bad = "dsr1_1k1k_fp4_sglang_tp8_ep1_dpa_false_conc16_mi355x-amds_01";
    let status = r#"{"status": "failed", "stage": "readiness", "exit_code": 12, "error": "engine not ready after 3600 s"}"#;
    vec![
        (
            11,
            format!("bmk_{ok4}"),
            false,
            zip_of(&[
                (&format!("{ok4}/agg.json"), &agg_json(4)),
                (&format!("{ok4}/summary.md"), "x"),
            ]),
        ),
        (
            12,
            "infmax-bin".into(),
            false,
            zip_of(&[("runner", "binary")]),
        ),
        (
            13,
            format!("bmk_{bad}"),
            false,
            zip_of(&[
                (&format!("{bad}/status.json"), status),
                (&format!("{bad}/server.log"), "..."),
            ]),
        ),
        (
            14,
            "bmk_dsr1_1k1k_fp4_sglang_tp8_ep1_dpa_false_conc32_old".into(),
            true,
            vec![],
        ),
        (
            15,
            format!("bmk_{ok8}"),
            false,
            zip_of(&[(&format!("{ok8}/agg.json"), &agg_json(8))]),
        ),
    ]
}

#[test]
fn collect_run_end_to_end_with_a_failed_job_and_an_expired_artifact() {
    let fake = start(sweep_artifacts());
    let base = fake.lock().unwrap().base.clone();
    let d = tempfile::tempdir().unwrap();
    let summary_file = d.path().join("step-summary.md");
    let o = {
        let mut c = Command::new(env!("CARGO_BIN_EXE_scheduler"));
        c.args([
            "collect", "--run-id", "42", "--out", "sweep", "--title", "sweep 42", "--no-png",
        ])
        .current_dir(d.path())
        .env("GITHUB_API_URL", &base)
        .env("GITHUB_REPOSITORY", "o/r")
        .env("GITHUB_TOKEN", TOKEN)
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_ACTIONS")
        .env("GITHUB_STEP_SUMMARY", &summary_file)
        .env(
            "INFMAX_BASELINES",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines"),
        );
        c.output().unwrap()
    };
    let (out, err) = text(&o);
    assert!(o.status.success(), "collect failed: {err}\n{out}");
    let sweep = d.path().join("sweep");
    let summary = std::fs::read_to_string(sweep.join("summary.md")).unwrap();
    assert!(summary.starts_with("## sweep 42"), "{summary}");
    let html = std::fs::read_to_string(sweep.join("report.html")).unwrap();
    assert_eq!(
        html.matches("<tr><td class=\"nw\">dsr1-fp4").count(),
        6,
        "2 rows × 3 tables"
    );
    // The page lists what is not in its tables too, the failed result linked to its files.
    assert!(html.contains("<h2>Not in the tables</h2>"));
    assert!(html.contains("failed at readiness (exit 12): engine not ready after 3600 s"));
    assert!(html.contains(
        "<td><a href=\"artifacts/bmk_dsr1_1k1k_fp4_sglang_tp8_ep1_dpa_false_conc16_mi355x-amds_01"
    ));
    assert!(html.contains("<a href=\"https://gh/j/2\">bench-0 (mi355x, 1024, 1024, 8)</a>"));
    assert!(html.contains("bmk_dsr1_1k1k_fp4_sglang_tp8_ep1_dpa_false_conc32_old"));
    // Both finished rows in one table.
    assert_eq!(summary.matches("| MI355X |").count(), 2, "{summary}");
    // The failed result, the failed job and the expired artifact are listed, not dropped.
    assert!(summary.contains("## Not in the table"), "{summary}");
    assert!(
        summary.contains(
            "conc16_mi355x-amds_01 | failed | readiness | 12 | engine not ready after 3600 s |"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("[bench-0 (mi355x, 1024, 1024, 8)](https://gh/j/2) | failure"),
        "{summary}"
    );
    assert!(
        summary.contains("- bmk_dsr1_1k1k_fp4_sglang_tp8_ep1_dpa_false_conc32_old"),
        "{summary}"
    );
    assert!(
        !summary.contains("collect / collect"),
        "an unfinished job is not a failure"
    );
    for f in ["verdict.md", "verdict.json", "collect.json"] {
        assert!(sweep.join(f).is_file(), "{f} missing");
    }
    assert!(
        std::fs::read_dir(&sweep).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "svg")),
        "no plot written"
    );
    let collected: Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("collect.json")).unwrap())
            .unwrap();
    assert_eq!(collected["run_id"], 42);
    assert_eq!(collected["results"].as_array().unwrap().len(), 3);
    assert_eq!(collected["expired"].as_array().unwrap().len(), 1);
    // Only bmk_* artifacts were downloaded, all three pages were read, and the blob URL never saw the token.
    assert!(!sweep.join("artifacts/infmax-bin").exists());
    assert!(
        sweep
            .join("artifacts/bmk_dsr1_1k1k_fp4_sglang_tp8_ep1_dpa_false_conc8_mi355x-amds_00")
            .is_dir(),
        "page 3 not read"
    );
    assert_eq!(fake.lock().unwrap().leaked_auth, 0);
    let step = std::fs::read_to_string(&summary_file).unwrap();
    assert!(step.contains("## Not in the table"), "{step}");
    assert!(
        err.contains(
            "3 results (2 finished, 1 failed or interrupted), 1 failed jobs, 1 expired artifacts"
        ),
        "{err}"
    );

    // --strict turns the failures into exit 1, after writing everything.
    let o = scheduler(
        &base,
        Some(TOKEN),
        &[
            "collect", "--run-id", "42", "--out", "strict", "--no-png", "--strict",
        ],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).1);
    assert!(d.path().join("strict/summary.md").is_file());
}

#[test]
fn collect_errors_are_clear() {
    let fake = start(sweep_artifacts());
    let base = fake.lock().unwrap().base.clone();
    let d = tempfile::tempdir().unwrap();
    let cases: [(&[&str], Option<&str>, &str); 5] = [
        (
            &["collect", "--run-id", "42"],
            Some("wrong"),
            "GitHub rejected the token (401 Bad credentials); check GITHUB_TOKEN / GH_TOKEN",
        ),
        (
            &["collect", "--run-id", "404"],
            Some(TOKEN),
            "listing the artifacts of run 404: not found (404 Not Found)",
        ),
        (
            &["collect", "--run-id", "403"],
            Some(TOKEN),
            "GitHub API rate limit exceeded, resets at 1700000000 (epoch s); wait",
        ),
        (
            &["collect", "--run-id", "42"],
            None,
            "no GitHub token: set GITHUB_TOKEN or GH_TOKEN",
        ),
        (
            &["collect", "--run-id", "42", "--repo", "just-a-name"],
            Some(TOKEN),
            "repository `just-a-name` is not of the form owner/name",
        ),
    ];
    for (args, token, want) in cases {
        let o = scheduler(&base, token, args, d.path());
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want `{want}` in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn dispatch_sends_inputs_and_prints_the_new_run() {
    let fake = start(vec![]);
    let base = fake.lock().unwrap().base.clone();
    let d = tempfile::tempdir().unwrap();
    let o = scheduler(
        &base,
        Some(TOKEN),
        &[
            "dispatch",
            "--isl-osl",
            "8k1k",
            "--model-prefix",
            "dsr1",
            "gptoss",
            "--runner-type",
            "mi355x",
            "--conc",
            "4,8",
            "--test-mode",
            "--team",
            "red",
            "--poll-ms",
            "20",
            "--wait-s",
            "10",
        ],
        d.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.trim(), "https://github.com/o/r/actions/runs/8", "{err}");
    let sent = fake.lock().unwrap().dispatches.clone();
    assert_eq!(
        sent,
        vec![
            json!({"ref": "main", "inputs": {"isl-osl": "8k1k", "model-prefix": "dsr1 gptoss",
            "runner-type": "mi355x", "conc": "4,8", "test-mode": "true", "publish": "false", "team": "red"}})
        ]
    );
    // A workflow that does not exist is a clear 404.
    let o = scheduler(
        &base,
        Some(TOKEN),
        &["dispatch", "--workflow", "nope.yml", "--wait-s", "1"],
        d.path(),
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("dispatching nope.yml on main: not found (404"),
        "{err}"
    );
}

#[test]
fn runners_lists_labels_and_warns_about_unserved_matrix_labels() {
    let fake = start(vec![]);
    let base = fake.lock().unwrap().base.clone();
    let d = tempfile::tempdir().unwrap();
    let row = |runner: &str| json!({"runner": runner, "conc": 4});
    let chunked =
        json!({"count": 1, "chunks": [{"include": [row("mi355x"), row("b200"), row("gb200")]}]});
    let m = write(d.path(), "matrix.json", &chunked.to_string());
    let o = scheduler(&base, Some(TOKEN), &["runners", "--matrix", &m], d.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("mi355x-amds_00") && out.contains("self-hosted,mi355x"),
        "{out}"
    );
    assert!(
        out.contains("b200-nv_0") && out.contains("offline"),
        "{out}"
    );
    // b200's only runner is offline; nobody has gb200; mi355x is served.
    assert!(
        err.contains("no online self-hosted runner has label `b200`"),
        "{err}"
    );
    assert!(
        err.contains("no online self-hosted runner has label `gb200`"),
        "{err}"
    );
    assert!(!err.contains("label `mi355x`"), "{err}");
    let o = scheduler(
        &base,
        Some(TOKEN),
        &["runners", "--matrix", &m, "--strict"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    // A plain row list works too, and every label served means no warning.
    let m = write(
        d.path(),
        "rows.json",
        &json!([row("mi355x"), row("h200")]).to_string(),
    );
    let o = scheduler(
        &base,
        Some(TOKEN),
        &["runners", "--matrix", &m, "--strict"],
        d.path(),
    );
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("every label of the matrix (h200, mi355x) has an online runner"),
        "{err}"
    );
}

#[test]
fn unzip_refuses_paths_outside_the_artifact() {
    let d = tempfile::tempdir().unwrap();
    let evil = zip_of(&[("../escape.txt", "x")]);
    let e = infmax::github::collect::unzip("bmk_evil", &evil, &d.path().join("a")).unwrap_err();
    assert!(e.to_string().contains("points outside the artifact"), "{e}");
    assert!(!d.path().join("escape.txt").exists());
}

/// Tokens with these markers make the fake answer as a debugging proxy in front of the API
/// might: the request's headers, token included, echoed in a 401 or 500 body.
const ECHO_401: &str = "ghp_echo401SecretValue0123456789";
const ECHO_500: &str = "ghp_echo500SecretValue9876543210";

/// A configured token never reaches the terminal or a file, even when the API echoes it back.
#[test]
fn echoed_token_never_reaches_output() {
    let fake = start(sweep_artifacts());
    let base = fake.lock().unwrap().base.clone();
    for token in [ECHO_401, ECHO_500] {
        for (args, var) in [
            (
                &["collect", "--run-id", "42", "--out", "sweep"][..],
                "GITHUB_TOKEN",
            ),
            (&["runners"][..], "GH_TOKEN"),
            (&["dispatch", "--wait-s", "1"][..], "GITHUB_TOKEN"),
        ] {
            let d = tempfile::tempdir().unwrap();
            let mut c = Command::new(env!("CARGO_BIN_EXE_scheduler"));
            c.args(args)
                .current_dir(d.path())
                .env("GITHUB_API_URL", &base)
                .env("GITHUB_REPOSITORY", "o/r")
                .env_remove("GITHUB_TOKEN")
                .env_remove("GH_TOKEN")
                .env_remove("GITHUB_ACTIONS")
                .env("GITHUB_STEP_SUMMARY", d.path().join("summary.md"))
                .env("RUST_LOG", "trace")
                .env(var, token);
            let o = c.output().unwrap();
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
            assert!(
                err.contains("Bearer [redacted]") || err.contains("token [redacted]"),
                "{args:?}: the echo is shown, redacted: {err}"
            );
            let mut seen = vec![("stdout".to_string(), out), ("stderr".to_string(), err)];
            seen.extend(crate::util::files_text(d.path()));
            for (name, t) in seen {
                assert!(!t.contains(token), "{args:?}: token in {name}: {t}");
                assert!(
                    !t.contains(&token[..12]),
                    "{args:?}: part of the token in {name}"
                );
            }
        }
    }
}
