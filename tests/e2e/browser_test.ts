/**
 * Headless Chromium loads a page with images through the client's SOCKS5
 * port (tests/e2e/_browser.ts keeps it on loopback).
 *
 * @module
 */
import { test } from "../support/deadline.ts";
import { hasChromium, loadPage } from "./_browser.ts";

const chromium = await hasChromium();

test.slow({
  name: "headless Chromium loads http://127.0.0.1/… and all its images through the tunnel",
  ignore: !chromium,
  fn: () => loadPage("127.0.0.1"),
});

test.slow({
  name: "headless Chromium loads http://localhost/… and all its images through the tunnel",
  ignore: !chromium,
  fn: () => loadPage("localhost"),
});
