//! The admin pages in a real browser: headless Chromium through chromedriver, driven the way a
//! person uses the pages (labels, button texts, what the page says) against the real app, a
//! real SMTP server and the fake Google. Each flow has its own app and its own browser. They
//! run only with SWITCHBOARD_BROWSER=1 (leg 4 of `.ci/run`); the screenshots in
//! docs/screenshots come from them.

mod access;
mod channels;
mod dashboard;
mod gmail;
mod harness;
mod people;
mod phone;
mod rotate;
mod route;
mod sign_in;
