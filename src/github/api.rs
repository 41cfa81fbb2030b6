//! The few GitHub REST endpoints the workflows need, over octocrab, with our own minimal
//! response types (only the fields we read, so a new or absent field elsewhere never breaks
//! a sweep) and errors that say what to check.

use super::GithubError;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A workflow run's artifact.
#[derive(Debug, Clone, Deserialize)]
pub struct Artifact {
    /// Artifact id.
    pub id: u64,
    /// Name given at upload (`bmk_<RESULT_FILENAME>` for benchmark results).
    pub name: String,
    /// Size of the zip.
    #[serde(default)]
    pub size_in_bytes: u64,
    /// Where the zip is (answers with a redirect to a short-lived blob URL).
    pub archive_download_url: String,
    /// Past its retention period: listed, but no longer downloadable.
    #[serde(default)]
    pub expired: bool,
}

/// A job of a workflow run.
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    /// Job id.
    pub id: u64,
    /// Display name (for matrix jobs it includes the matrix values).
    pub name: String,
    /// `queued`, `in_progress`, `completed`, …
    pub status: String,
    /// `success`, `failure`, `cancelled`, `timed_out`, `skipped`, … once completed.
    #[serde(default)]
    pub conclusion: Option<String>,
    /// The job's page.
    #[serde(default)]
    pub html_url: Option<String>,
}

impl Job {
    /// Completed without success (failed, cancelled or timed out).
    pub fn failed(&self) -> bool {
        matches!(
            self.conclusion.as_deref(),
            Some("failure" | "cancelled" | "timed_out" | "startup_failure")
        )
    }
}

/// A self-hosted runner.
#[derive(Debug, Clone, Deserialize)]
pub struct Runner {
    /// Runner id.
    pub id: u64,
    /// Runner name (`RUNNER_NAME` inside its jobs).
    pub name: String,
    /// `online` or `offline`.
    pub status: String,
    /// Running a job now.
    #[serde(default)]
    pub busy: bool,
    /// Its labels (`self-hosted`, OS, architecture, custom ones like `mi355x`).
    #[serde(default)]
    pub labels: Vec<Label>,
}

/// A runner label.
#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    /// The label.
    pub name: String,
}

/// A workflow run.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowRun {
    /// Run id (`github.run_id`).
    pub id: u64,
    /// The run's page.
    pub html_url: String,
    /// `queued`, `in_progress`, `completed`, …
    #[serde(default)]
    pub status: Option<String>,
}

/// A GitHub REST client bound to one repository.
#[derive(Debug, Clone)]
pub struct Client {
    gh: Octocrab,
    /// API base without a trailing slash (`https://api.github.com`).
    api: String,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
}

/// Results per page when listing (GitHub's maximum).
const PER_PAGE: u32 = 100;

impl Client {
    /// A client for `owner/repo` at `api_url` (GitHub: `https://api.github.com`; GHES:
    /// `https://HOST/api/v3`). Needs a Tokio runtime.
    pub fn new(api_url: &str, owner: &str, repo: &str, token: String) -> Result<Self, GithubError> {
        let api = api_url.trim_end_matches('/').to_string();
        let gh = Octocrab::builder()
            .base_uri(api.as_str())
            .map_err(|e| GithubError::Http {
                what: format!("API URL {api}"),
                message: e.to_string(),
            })?
            .personal_token(token)
            .build()
            .map_err(|e| GithubError::Http {
                what: "building the GitHub client".into(),
                message: e.to_string(),
            })?;
        Ok(Client {
            gh,
            api,
            owner: owner.into(),
            repo: repo.into(),
        })
    }

    fn repo_url(&self, path: &str) -> String {
        format!("{}/repos/{}/{}/{path}", self.api, self.owner, self.repo)
    }

    /// Every item of a paginated list, following `Link: rel="next"`.
    async fn list<T: DeserializeOwned>(
        &self,
        what: &str,
        url: String,
    ) -> Result<Vec<T>, GithubError> {
        let first: octocrab::Page<T> = self
            .gh
            .get(url, Some(&[("per_page", PER_PAGE)]))
            .await
            .map_err(|e| map_err(what, e))?;
        self.gh.all_pages(first).await.map_err(|e| map_err(what, e))
    }

    /// All artifacts of a run, expired ones included.
    pub async fn artifacts(&self, run_id: u64) -> Result<Vec<Artifact>, GithubError> {
        self.list(
            &format!("listing the artifacts of run {run_id}"),
            self.repo_url(&format!("actions/runs/{run_id}/artifacts")),
        )
        .await
    }

    /// The latest attempt's jobs of a run.
    pub async fn jobs(&self, run_id: u64) -> Result<Vec<Job>, GithubError> {
        self.list(
            &format!("listing the jobs of run {run_id}"),
            self.repo_url(&format!("actions/runs/{run_id}/jobs?filter=latest")),
        )
        .await
    }

    /// The repository's self-hosted runners.
    pub async fn runners(&self) -> Result<Vec<Runner>, GithubError> {
        self.list(
            "listing the repository's self-hosted runners",
            self.repo_url("actions/runners"),
        )
        .await
    }

    /// The newest runs of a workflow (first page only), optionally for one event and branch.
    pub async fn runs(
        &self,
        workflow: &str,
        event: &str,
        branch: &str,
    ) -> Result<Vec<WorkflowRun>, GithubError> {
        let what = format!("listing the runs of {workflow}");
        let page: octocrab::Page<WorkflowRun> = self
            .gh
            .get(
                self.repo_url(&format!("actions/workflows/{workflow}/runs")),
                Some(&[("event", event), ("branch", branch), ("per_page", "50")]),
            )
            .await
            .map_err(|e| map_err(&what, e))?;
        Ok(page.items)
    }

    /// `workflow_dispatch` a workflow on `git_ref` with `inputs` (GitHub answers 204).
    pub async fn dispatch(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), GithubError> {
        let what = format!("dispatching {workflow} on {git_ref}");
        let body = serde_json::json!({"ref": git_ref, "inputs": inputs});
        let resp = self
            .gh
            ._post(
                self.repo_url(&format!("actions/workflows/{workflow}/dispatches")),
                Some(&body),
            )
            .await
            .map_err(|e| map_err(&what, e))?;
        octocrab::map_github_error(resp)
            .await
            .map_err(|e| map_err(&what, e))?;
        Ok(())
    }

    /// Download an artifact's zip. GitHub answers the authenticated request with a redirect
    /// to a pre-signed blob URL, which is fetched without our token (it must not leave
    /// GitHub's API host).
    pub async fn download(&self, a: &Artifact) -> Result<Vec<u8>, GithubError> {
        use http_body_util::BodyExt;
        let what = format!("downloading artifact {}", a.name);
        let resp = self
            .gh
            ._get(a.archive_download_url.as_str())
            .await
            .map_err(|e| map_err(&what, e))?;
        if resp.status().is_redirection() {
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| GithubError::Http {
                    what: what.clone(),
                    message: format!("{} without a Location header", resp.status()),
                })?
                .to_string();
            let blob = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::limited(5))
                .build()
                .map(|c| c.get(&location))
                .map_err(|e| GithubError::Http {
                    what: what.clone(),
                    message: e.to_string(),
                })?
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| GithubError::Http {
                    what: what.clone(),
                    message: format!("blob download: {e}"),
                })?;
            return blob
                .bytes()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| GithubError::Http {
                    what,
                    message: format!("blob download: {e}"),
                });
        }
        let resp = octocrab::map_github_error(resp)
            .await
            .map_err(|e| map_err(&what, e))?;
        resp.into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .map_err(|e| GithubError::Http {
                what,
                message: e.to_string(),
            })
    }
}

/// Turn an octocrab error into one that says what to check.
fn map_err(what: &str, e: octocrab::Error) -> GithubError {
    let what = what.to_string();
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let remaining = source
                .headers
                .as_ref()
                .and_then(|h| h.get("x-ratelimit-remaining"))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let limited = (status == 403 || status == 429)
                && (remaining.as_deref() == Some("0")
                    || source.message.to_lowercase().contains("rate limit"));
            if limited {
                let reset = source
                    .rate_limit_reset
                    .map(|t| format!(", resets at {t} (epoch s)"))
                    .unwrap_or_default();
                return GithubError::RateLimited { what, reset };
            }
            match status {
                401 => GithubError::Unauthorized {
                    what,
                    message: source.message,
                },
                404 => GithubError::NotFound {
                    what,
                    message: source.message,
                },
                _ => GithubError::Api {
                    what,
                    status,
                    message: source.message,
                },
            }
        }
        other => GithubError::Http {
            what,
            message: other.to_string(),
        },
    }
}
