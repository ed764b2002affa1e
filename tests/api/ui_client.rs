//! A browser stand-in for HTTP tests of the admin pages: keeps cookies, does not follow
//! redirects (tests look at them), and reads the CSRF token off the last page, the way a
//! browser's form submission would carry it. Real-browser tests are in `browser/`.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{Response, StatusCode};

use crate::helpers::TestApp;

pub struct UiClient {
    pub base: String,
    client: reqwest::Client,
    /// name → value; cleared by `Max-Age=0`.
    pub cookies: BTreeMap<String, String>,
    /// The `_csrf` value of the last page fetched that had a form.
    pub csrf: Option<String>,
}

/// A page as the tests see it.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl Page {
    /// Panics with the page when `needle` is not on it.
    pub fn expect(&self, needle: &str) -> &Self {
        assert!(
            self.html.contains(needle),
            "`{needle}` not on the page ({}):\n{}",
            self.status,
            self.html
        );
        self
    }

    pub fn expect_not(&self, needle: &str) -> &Self {
        assert!(
            !self.html.contains(needle),
            "`{needle}` should not be on the page:\n{}",
            self.html
        );
        self
    }
}

/// The value of the first `name="…" value="…"` hidden input on a page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].replace("&amp;", "&"))
}

impl UiClient {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.address.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            csrf: None,
        }
    }

    /// A client signed in with `token` (through the sign-in form, as a person would).
    pub async fn signed_in(app: &TestApp, token: &str) -> Self {
        let mut ui = Self::new(app);
        let page = ui.sign_in(token).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "sign-in: {}", page.html);
        ui
    }

    pub async fn sign_in(&mut self, token: &str) -> Page {
        self.get("/ui/sign-in").await;
        self.post("/ui/sign-in", &[("token", token)]).await
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, response: Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookies: Vec<String> = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        for cookie in &set_cookies {
            let first = cookie.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            if cookie.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let html = response.text().await.unwrap_or_default();
        if let Some(token) = hidden_value(&html, "_csrf") {
            self.csrf = Some(token);
        }
        Page {
            status,
            location,
            set_cookies,
            headers,
            html,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("page fetched");
        self.read(response).await
    }

    /// A GET with one extra request header (a conditional request, say); just the status.
    pub async fn get_with_header(&self, path: &str, name: &str, value: &str) -> StatusCode {
        self.client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .header(name, value)
            .send()
            .await
            .expect("page fetched")
            .status()
    }

    /// Follows one redirect (as a browser would after a form) and returns the page.
    pub async fn follow(&mut self, page: &Page) -> Page {
        let to = page.location.clone().expect("a redirect");
        self.get(&to).await
    }

    /// Posts a form with the current CSRF token, from this site (Origin as a browser sets).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone().unwrap_or_default();
        self.post_raw(path, fields, Some(&csrf), Some(&self.base.clone()), false)
            .await
    }

    /// Posts a form as the page script does (wants a fragment back).
    pub async fn post_fragment(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone().unwrap_or_default();
        self.post_raw(path, fields, Some(&csrf), Some(&self.base.clone()), true)
            .await
    }

    /// Posts with full control of the CSRF token and Origin, for the tests that forge them.
    pub async fn post_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        csrf: Option<&str>,
        origin: Option<&str>,
        fragment: bool,
    ) -> Page {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if let Some(csrf) = csrf {
            form.push(("_csrf", csrf));
        }
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(&form);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        if fragment {
            request = request.header("X-Switchboard-Fragment", "1");
        }
        let response = request.send().await.expect("form posted");
        self.read(response).await
    }
}
