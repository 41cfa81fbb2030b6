//! Build script: records the git commit the binaries are built from, for `--version`.
//!
//! Outside a git checkout (a crates.io tarball, a source archive) or without `git`, the
//! version says so instead of failing the build.

// Cargo reads a build script's stdout: println! is its interface, not user output.
#![allow(clippy::disallowed_macros)]

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it names (a commit) and
    // packed-refs (a gc). Paths come from git, so worktrees work too.
    if commit.is_some() {
        let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            // A packed branch has no file of its own until its next commit writes one
            // into its folder.
            watch.push(git(&["rev-parse", "--git-path", &r]).map(|f| {
                let p = std::path::Path::new(&f);
                match p.parent() {
                    Some(dir) if !p.exists() => dir.display().to_string(),
                    _ => f,
                }
            }));
        }
        watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
        // Only files that exist: a missing one would make Cargo rerun this on every build.
        for p in watch
            .into_iter()
            .flatten()
            .filter(|p| std::path::Path::new(p).exists())
        {
            println!("cargo:rerun-if-changed={p}");
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
    let commit = commit.unwrap_or_else(|| "commit unknown: not built from a git checkout".into());
    println!("cargo:rustc-env=INFMAX_GIT_COMMIT={commit}");
}
