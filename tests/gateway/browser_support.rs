//! The browser tests' support: Debian's Chromium, headless, driven through its WebDriver
//! (`chromedriver`, one per test binary, started on a free port) with `fantoccini`; waits on page
//! conditions of at most 10 s; signing in; screenshots for the README.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::{TestApp, free_addr};

/// How long a test waits for a page condition.
pub(crate) const PAGE_WAIT: Duration = Duration::from_secs(10);

/// The WebDriver of this test binary: started once, stopped when the binary ends.
struct Driver {
    _child: Child,
    url: String,
}

fn driver() -> &'static str {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    &DRIVER
        .get_or_init(|| {
            let port = free_addr().port();
            assert!(
                Command::new("chromedriver").arg("--version").output().is_ok_and(|o| o.status.success()),
                "chromedriver cannot run: the browser tests need Debian's chromium and chromium-driver (scripts/test.sh installs them)"
            );
            // The driver lives as long as this process holds the wrapper's standard input: when
            // the test binary ends, the pipe closes and the wrapper stops it.
            let child = Command::new("sh")
                .args([
                    "-c",
                    // Then the browsers it started, even those a failed test left open.
                    "chromedriver --port=\"$1\" >/dev/null 2>&1 & d=$!; read -r _; \
                     pkill -TERM -P $d; kill $d",
                    "sh",
                ])
                .arg(port.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sh runs");
            let url = format!("http://127.0.0.1:{port}");
            let deadline = std::time::Instant::now() + PAGE_WAIT;
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(std::time::Instant::now() < deadline, "chromedriver did not start listening");
                std::thread::sleep(Duration::from_millis(50));
            }
            Driver { _child: child, url }
        })
        .url
}

/// A new headless browser session (a window of 1280 by 900).
pub(crate) async fn browser() -> Client {
    let mut args = vec![
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ];
    // As root (CI containers), Chromium's sandbox cannot start.
    if running_as_root() {
        args.push("--no-sandbox");
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": args, "binary": "/usr/bin/chromium" }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver())
        .await
        .expect("a browser session")
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Waits for an element; panics after [`PAGE_WAIT`] saying which.
pub(crate) async fn find(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page in time: {e}"))
}

/// Saves the page as `name` in `SCREENSHOTS_DIR`, when it is set (the README's pictures are made
/// so: `SCREENSHOTS_DIR=docs cargo test --features test-hooks --test gateway browser`).
pub(crate) async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("SCREENSHOTS_DIR") {
        let png = client.screenshot().await.expect("screenshot");
        std::fs::write(std::path::Path::new(&dir).join(name), png).expect("saved");
    }
}

/// Whether the page scrolls sideways.
pub(crate) async fn scrolls_sideways(client: &Client) -> bool {
    let wider = client
        .execute(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .expect("script");
    wider.as_bool().expect("a boolean")
}

pub(crate) async fn sign_in(client: &Client, app: &TestApp, email: &str) {
    client.goto(&app.url("/console")).await.expect("goto");
    find(client, "input[name=email]")
        .await
        .send_keys(email)
        .await
        .expect("typed");
    find(client, "input[name=password]")
        .await
        .send_keys("an operator password")
        .await
        .expect("typed");
    find(client, "button[type=submit]")
        .await
        .click()
        .await
        .expect("clicked");
    find(client, "section.cards").await;
}

/// The class of door `door`'s cell on a locker's page.
pub(crate) async fn door_class(client: &Client, door: u16) -> String {
    find(client, &format!("li.door[data-door=\"{door}\"]"))
        .await
        .attr("class")
        .await
        .expect("attr")
        .unwrap_or_default()
}

/// Waits until `check` holds on the page, at most [`PAGE_WAIT`].
pub(crate) async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PAGE_WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
