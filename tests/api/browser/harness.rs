//! Headless Chromium driven through chromedriver, and the few ways a person finds things on a
//! page: a field by its label, a button by its text, text on the page. Every wait polls with a
//! deadline; nothing sleeps for a fixed time and hopes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Long enough for a connection test against a local SMTP server on a busy CI machine, short
/// enough that a broken page fails its test quickly.
pub const PATIENCE: Duration = Duration::from_secs(15);
/// The laptop window every screenshot in docs/screenshots is taken at.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;
/// Long forms are shot whole up to this height; beyond it the picture stops.
const MAX_SHOT_HEIGHT: u64 = 4000;

/// Whether the browser tests run here. They need Chromium and chromedriver, which the README's
/// plain `cargo test` does not assume; `.ci/run` sets SWITCHBOARD_BROWSER=1 after
/// `.ci/browser.sh` installed them.
pub fn skipped(test: &str) -> bool {
    if std::env::var("SWITCHBOARD_BROWSER").as_deref() == Ok("1") {
        return false;
    }
    println!(
        "skipped browser::{test}: set SWITCHBOARD_BROWSER=1 to run it in headless Chromium \
         (.ci/browser.sh installs chromium and chromium-driver)"
    );
    true
}

/// A chromedriver process (and the Chromium it starts) in a process group of its own, so a
/// test that fails half-way still leaves no browser behind.
struct Driver {
    child: Child,
    port: u16,
    /// Chromium's user-data-dir: fresh for every browser.
    profile: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group id is the driver's pid (process_group(0) below): ending the group ends the
        // Chromium processes it started too.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now (for chromedriver, and for an app that must know its own
/// address before it starts).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    async fn start() -> Driver {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(program).exists(),
                "SWITCHBOARD_BROWSER=1 but {program} is missing: run .ci/browser.sh \
                 (Debian packages chromium and chromium-driver)"
            );
        }
        // Another test may take the free port between our look and chromedriver's bind.
        for _ in 0..3 {
            let port = free_port();
            let mut command = Command::new(CHROMEDRIVER);
            command
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let child = command.spawn().expect("chromedriver starts");
            let mut driver = Driver {
                child,
                port,
                profile: TempDir::new().unwrap(),
            };
            if driver.ready().await {
                return driver;
            }
        }
        panic!("chromedriver did not answer on /status");
    }

    /// Polls /status until chromedriver answers, or it exits, or ten seconds pass.
    async fn ready(&mut self) -> bool {
        let url = format!("http://127.0.0.1:{}/status", self.port);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(res) = reqwest::get(&url).await
                && res.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// One browser, pointed at one app.
pub struct Browser {
    pub client: Client,
    base: String,
    _driver: Driver,
}

impl Browser {
    /// A fresh headless Chromium (new profile, no cookies) for the app at `base`.
    pub async fn open(base: &str) -> Browser {
        let driver = Driver::start().await;
        let options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--window-size={WIDTH},{HEIGHT}"),
                format!("--user-data-dir={}", driver.profile.path().display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("chromedriver opens a Chromium session");
        Browser {
            client,
            base: base.trim_end_matches('/').to_owned(),
            _driver: driver,
        }
    }

    /// Ends the session; Chromium exits (the driver goes with `Drop`).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Signs in through the sign-in page with `token`; lands on the channel list.
    pub async fn sign_in(&self, token: &str) {
        self.goto("/ui/sign-in").await;
        self.fill("API token", token).await;
        self.press("Sign in").await;
        self.wait_for_path("/ui/channels").await;
    }

    /// Signs out with the header's button; lands on the sign-in page.
    pub async fn sign_out(&self) {
        self.press("Sign out").await;
        self.wait_for_path("/ui/sign-in").await;
    }

    /// The status badge next to the page's heading ("Active", "Needs reauth: …").
    pub async fn heading_badge(&self) -> String {
        self.find("//h1//span[contains(concat(' ', @class, ' '), ' badge ')]")
            .await
            .text()
            .await
            .unwrap()
    }

    /// The text of the element with this id (a result region, say).
    pub async fn text_of(&self, id: &str) -> String {
        self.find(&format!("//*[@id={}]", xpath_literal(id)))
            .await
            .text()
            .await
            .unwrap()
    }

    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn goto(&self, path: &str) {
        self.client.goto(&self.url_of(path)).await.unwrap();
    }

    /// The path and query the browser is on.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The page's text as a person sees it.
    pub async fn text(&self) -> String {
        self.js("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits until `needle` is on the page; panics with what the page says instead.
    pub async fn wait_for_text(&self, needle: &str) {
        self.wait_until(&format!("`{needle}` on the page"), |text| {
            text.contains(needle)
        })
        .await;
    }

    /// Waits until the page's text satisfies `done`; returns that text.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self.text().await;
            if done(&text) {
                return text;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "waited {PATIENCE:?} for {what}; {} shows:\n{text}",
                    self.path().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the browser is on `path` (a prefix is enough: ids follow).
    pub async fn wait_for_path(&self, path: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.path().await;
            if now.starts_with(path) {
                return now;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "waited {PATIENCE:?} to be on {path}; on {now}:\n{}",
                    self.text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching an XPath, waited for.
    pub async fn find(&self, xpath: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(xpath))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no {xpath} on {} ({e}):\n{}",
                self.path().await,
                self.text().await
            ),
        }
    }

    /// The form control a `<label>` with this text is for (the text before any "(optional)").
    pub async fn field(&self, label: &str) -> Element {
        let label = self
            .find(&format!(
                "//label[normalize-space(text()[1])={0} or normalize-space()={0}]",
                xpath_literal(label)
            ))
            .await;
        let id = label
            .attr("for")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the label has no `for`"));
        self.client.find(Locator::Id(&id)).await.unwrap()
    }

    /// What the field a label names holds now.
    pub async fn value_of(&self, label: &str) -> String {
        self.field(label)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Types into the field a label names, replacing what was there.
    pub async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Picks an option by its visible text in the select a label names.
    pub async fn choose(&self, label: &str, option: &str) {
        self.field(label)
            .await
            .select_by_label(option)
            .await
            .unwrap_or_else(|e| panic!("no option `{option}` in `{label}`: {e}"));
    }

    /// The button with this text.
    pub async fn button(&self, text: &str) -> Element {
        self.find(&format!(
            "//button[normalize-space()={}]",
            xpath_literal(text)
        ))
        .await
    }

    /// Clicks the button with this text.
    pub async fn press(&self, text: &str) {
        let button = self.button(text).await;
        self.click_element(&button).await;
    }

    /// Follows the link with this text.
    pub async fn follow(&self, text: &str) {
        let link = self
            .find(&format!("//a[normalize-space()={}]", xpath_literal(text)))
            .await;
        self.click_element(&link).await;
    }

    /// Scrolls the element into view first: a laptop-sized window does not show long forms
    /// whole, and chromedriver refuses to click what is covered.
    async fn click_element(&self, element: &Element) {
        let arg = serde_json::to_value(element).unwrap();
        self.client
            .execute("arguments[0].scrollIntoView({block: 'center'});", vec![arg])
            .await
            .unwrap();
        element.click().await.unwrap();
    }

    /// Marks the current document, to tell later whether the browser loaded a new one.
    pub async fn mark_document(&self) {
        self.js("window.__switchboardStayed = true; return null;")
            .await;
    }

    /// Whether the document marked by `mark_document` is still the one shown.
    pub async fn same_document(&self) -> bool {
        self.js("return window.__switchboardStayed === true;")
            .await
            .as_bool()
            .unwrap_or(false)
    }

    /// Sizes the window (the phone test narrows it).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Saves the whole page as docs/screenshots/NAME.png at laptop width: the window grows to
    /// the page's height for the picture, then returns to its size.
    pub async fn screenshot(&self, name: &str) {
        screenshot(&self.client, name).await;
    }
}

/// Writes docs/screenshots/NAME.png of the page in `client` at its current width, as tall as
/// the page (up to a limit).
pub async fn screenshot(client: &Client, name: &str) {
    let (width, height) = client.get_window_size().await.unwrap();
    // [page height, viewport height]: the window is taller than its viewport by the browser's
    // own bars, even headless.
    let sizes = client
        .execute(
            "return [Math.ceil(document.documentElement.scrollHeight), window.innerHeight]",
            vec![],
        )
        .await
        .unwrap();
    let dimension = |i: usize| sizes[i].as_u64().unwrap_or(height);
    let (page, viewport) = (dimension(0), dimension(1));
    let grow = page > viewport;
    if grow {
        let bars = height.saturating_sub(viewport);
        client
            .set_window_size(width as u32, (page.min(MAX_SHOT_HEIGHT) + bars) as u32)
            .await
            .unwrap();
    }
    let png = client.screenshot().await.unwrap();
    if grow {
        client
            .set_window_size(width as u32, height as u32)
            .await
            .unwrap();
    }
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "docs", "screenshots"]
        .iter()
        .collect();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// `s` as an XPath 1.0 string literal (which has no escapes).
pub fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}
