//! The scan page in a real browser: headless Chromium (Debian `chromium`, installed by
//! `scripts/install-deps.sh test`) loads `/v/<QR>` (for a valid code, the link read from
//! its printed image, as a phone camera opens it) for a valid and a revoked enterprise
//! and for a presentation, and the permits under a code's license; the test reads the rendered DOM and keeps screenshots under
//! `target/screenshots/`.

use std::{path::PathBuf, process::Command};

use crate::helpers::{Backend, Sources, TestApp, read_qr, sh_uscc, spawn_app, spawn_with_sources};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url` with a fresh profile: the rendered DOM, and a
/// screenshot saved as `name`, of a phone's screen.
fn render(browser: &PathBuf, url: &str, name: &str) -> String {
    render_sized(browser, url, name, "412,915")
}

/// Like [`render`], with the window `size` ("width,height") for the screenshot.
fn render_sized(browser: &PathBuf, url: &str, name: &str, size: &str) -> String {
    let common = |profile: &std::path::Path| {
        let mut c = Command::new(browser);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--window-size={size}"))
        .arg(format!("--user-data-dir={}", profile.display()));
        c
    };
    let profile = tempfile::tempdir().unwrap();
    let out = common(profile.path())
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {out:?}");
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    let profile = tempfile::tempdir().unwrap();
    let shot = screenshots().join(name);
    let out = common(profile.path())
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium screenshot failed: {out:?}");
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        "no screenshot at {}",
        shot.display()
    );
    dom
}

fn url(app: &TestApp, path: &str) -> String {
    format!("http://{}{path}", app.addr)
}

#[tokio::test]
async fn chromium_renders_the_verdict_for_a_valid_and_a_revoked_enterprise() {
    let Some(browser) = chromium() else {
        if std::env::var_os("CREDMESH_REQUIRE_CHROMIUM").is_some() {
            panic!("chromium is required: scripts/install-deps.sh test");
        }
        eprintln!("skipped: no chromium on PATH (scripts/install-deps.sh test installs it)");
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let dept = app.department().await;
    let good = sh_uscc(30);
    let bad = sh_uscc(31);
    app.establish(&dept, &good).await;
    app.establish(&dept, &bad).await;
    let good_token = app.enterprise(&good).await;
    let bad_token = app.enterprise(&bad).await;
    // A phone camera reads the printed code: the link it opens is the scan page's URL.
    let good_code = app.code(&good_token, &good).await.unwrap();
    let good_link = read_qr(&good_code.code.unwrap().qr_png);
    assert_eq!(good_link, good_code.scan_url);
    assert_eq!(good_link, url(&app, &good_code.scan_path));
    let bad_path = app.code(&bad_token, &bad).await.unwrap().scan_path;
    let presentation = app
        .present(&good_token, &good, "bank-loan")
        .await
        .unwrap()
        .scan_path;
    app.revoke(&dept, &bad).await;

    // Chromium blocks the runtime thread it runs on; the server keeps serving on others.
    let (b, u) = (browser.clone(), good_link);
    let dom = tokio::task::spawn_blocking(move || render(&b, &u, "entcode-valid.png"))
        .await
        .unwrap();
    assert!(dom.contains("data-outcome=\"VALID\""), "{dom}");
    assert!(dom.contains("有效") && dom.contains("Valid"));
    assert!(dom.contains("上海静安面馆有限公司"));
    assert!(dom.contains(&good));
    assert!(dom.contains("查验时间") && dom.contains("Checked at"));
    assert!(
        dom.contains("营业期限") && dom.contains("至 长期 · long-term"),
        "{dom}"
    );

    let (b, u) = (browser.clone(), url(&app, &bad_path));
    let dom = tokio::task::spawn_blocking(move || render(&b, &u, "entcode-revoked.png"))
        .await
        .unwrap();
    assert!(dom.contains("data-outcome=\"LICENSE_NOT_ACTIVE\""), "{dom}");
    assert!(dom.contains("营业执照已注销或吊销") && dom.contains("License not in force"));
    assert!(dom.contains("revoked"));
    assert!(
        !dom.contains("南京西路"),
        "a withdrawn code shows no license fields"
    );

    // A presentation: opening its link (twice here, for the DOM and the screenshot)
    // only asks, and uses nothing up; its button posts to the same address.
    let (b, u) = (browser, url(&app, &presentation));
    let dom = tokio::task::spawn_blocking(move || render(&b, &u, "entcode-presentation.png"))
        .await
        .unwrap();
    assert!(dom.contains("data-outcome=\"UNCHECKED\""), "{dom}");
    assert!(
        dom.contains("<form method=\"post\">") && dom.contains("核验"),
        "{dom}"
    );
    assert!(
        !dom.contains("注册资本"),
        "nothing is disclosed before the check"
    );
    let (_, html) = app.http_post(&presentation).await;
    assert!(html.contains("data-outcome=\"VALID\""), "{html}");
    assert!(html.contains("bank-loan"));
    assert!(
        html.contains("注册资本") && html.contains("500,000.00 元 (CNY)"),
        "{html}"
    );
    assert!(
        !html.contains("南京西路"),
        "bank-loan does not disclose the domicile"
    );
    let (_, again) = app.http_post(&presentation).await;
    assert!(again.contains("ALREADY_USED"), "{again}");
}

#[tokio::test]
async fn chromium_renders_the_permits_under_the_license_valid_and_revoked() {
    let Some(browser) = chromium() else {
        if std::env::var_os("CREDMESH_REQUIRE_CHROMIUM").is_some() {
            panic!("chromium is required: scripts/install-deps.sh test");
        }
        eprintln!("skipped: no chromium on PATH (scripts/install-deps.sh test installs it)");
        return;
    };
    let app = spawn_with_sources(Backend::Sqlite, Sources::Live).await;
    let dept = app.department().await;
    let bureau = app.market_bureau().await;
    let uscc = sh_uscc(32);
    app.establish(&dept, &uscc).await;
    let kept = app.issue_food_permit(&bureau, &uscc).await;
    let gone = app.issue_food_permit(&bureau, &uscc).await;
    app.revoke_permit(&bureau, &gone.serial).await;
    let me = app.enterprise(&uscc).await;
    let path = app.code(&me, &uscc).await.unwrap().scan_path;

    let u = url(&app, &path);
    let dom = tokio::task::spawn_blocking(move || {
        render_sized(&browser, &u, "entcode-permits.png", "412,1900")
    })
    .await
    .unwrap();
    assert!(dom.contains("data-outcome=\"VALID\""), "{dom}");
    assert!(dom.contains("南京西路"), "the license is shown");
    assert!(dom.contains("许可证 · Permits"), "{dom}");
    assert!(
        dom.contains(&format!(
            "data-serial=\"{}\" data-state=\"valid\"",
            kept.serial
        )),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(
            "data-serial=\"{}\" data-state=\"revoked\"",
            gone.serial
        )),
        "{dom}"
    );
    assert!(dom.contains("有效 · valid") && dom.contains("已撤销 · revoked"));
    assert!(dom.contains("上海市市场监督管理局"));
}
