// Dashboard behaviour: live refresh without overlapping requests, launch, and actions.
// Every state-changing request carries the session's CSRF token; the API key never reaches here.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  // The login page (a plain form) and the template pages (templates.js) have no pool view.
  if (!csrfMeta || !document.getElementById("launch-form")) return;
  const csrf = csrfMeta.content;
  const headers = { "X-Requested-With": "fetch" };

  function toast(message, bad) {
    const box = document.getElementById("toast");
    box.textContent = message;
    box.className = bad ? "bad" : "";
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (typeof body.error === "string") return body.error;
      const detail = body.detail;
      if (typeof detail === "string") return detail;
      if (Array.isArray(detail)) return detail.map((d) => d.msg).join("; ");
      return body.error || response.statusText;
    } catch (_) {
      return response.statusText;
    }
  }

  function loggedOut(response) {
    if (response.status === 401) { window.location.assign("/dashboard/login"); return true; }
    return false;
  }

  // A poller runs one request at a time; a refresh asked for mid-flight runs once it lands.
  function poller(element, urlFor, intervalMs) {
    let running = false, again = false, timer = null;
    async function run() {
      clearTimeout(timer);
      if (running) { again = true; return; }
      running = true;
      try {
        const response = await fetch(urlFor(), { headers, cache: "no-store" });
        if (loggedOut(response)) return;
        if (response.ok) element.innerHTML = await response.text();
      } catch (_) {
        // The pool restarting is normal during operations; the next round tries again.
      } finally {
        running = false;
        if (again) { again = false; run(); } else { timer = setTimeout(run, intervalMs); }
      }
    }
    timer = setTimeout(run, intervalMs);
    return run;
  }

  const summary = document.getElementById("summary");
  const refreshSummary = poller(summary, () => summary.dataset.src, 2000);

  const list = document.getElementById("agent-list");
  const filter = document.getElementById("agent-filter");
  const search = document.getElementById("agent-search");
  const refreshAgents = poller(list, () => {
    const params = new URLSearchParams({ group: filter.value, q: search.value });
    return list.dataset.src + "?" + params.toString();
  }, 4000);
  filter.addEventListener("change", refreshAgents);
  let searchTimer = null;
  search.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(refreshAgents, 250); });

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { ...headers, "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    if (loggedOut(response)) throw new Error("logged out");
    return response;
  }

  const confirmations = {
    kill: (id) => `Kill instance ${id}? Its agent stops and its resources are destroyed.`,
    dismiss: (id) => `Dismiss crashed instance ${id}? It is destroyed.`,
  };

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const { action, id } = button.dataset;
    if (confirmations[action] && !window.confirm(confirmations[action](id))) return;
    button.disabled = true;
    try {
      const response = await post(`/dashboard/instances/${encodeURIComponent(id)}/${action}`);
      if (response.ok) toast((await response.json()).message, false);
      else toast(await errorText(response), true);
    } catch (_) {
      toast("request failed", true);
    } finally {
      refreshAgents();
      refreshSummary();
    }
  });

  async function bulk(kind, countInput, question) {
    const count = parseInt(countInput.value, 10);
    if (!(count >= 1)) { toast("enter a count of at least 1", true); return; }
    if (question && !window.confirm(question(count))) return;
    try {
      const response = await post(`/dashboard/${kind}`, { count });
      if (response.ok) toast((await response.json()).message, false);
      else toast(await errorText(response), true);
    } catch (_) {
      toast("request failed", true);
    }
    refreshAgents();
    refreshSummary();
  }
  document.getElementById("replenish-button").addEventListener("click",
    () => bulk("replenish", document.getElementById("replenish-count")));
  document.getElementById("drain-button").addEventListener("click",
    () => bulk("drain", document.getElementById("drain-count"),
      (n) => `Drain up to ${n} idle instance(s)? They are destroyed; claimed ones are never touched.`));

  // Launch: the steps are the phases of one server call, shown as they happen.
  const form = document.getElementById("launch-form");
  const steps = document.getElementById("launch-steps");
  const launchError = document.getElementById("launch-error");
  const result = document.getElementById("launch-result");
  const joinField = document.getElementById("join-field");
  form.addEventListener("change", () => {
    joinField.hidden = form.elements.mode.value !== "join";
  });

  function step(name, state) {
    const item = steps.querySelector(`[data-step="${name}"]`);
    item.className = state;
  }

  // While the launched claim waits in the queue, re-read it every second (bounded: the claim has
  // its own deadline, after which the pool answers it failed). True once the invite is shown.
  async function follow() {
    const deadline = Date.now() + 2 * 3600 * 1000;
    for (;;) {
      const waiting = result.querySelector("[data-claim]");
      if (!waiting) return true;
      if (Date.now() > deadline) throw new Error("gave up following the claim");
      await new Promise((resolve) => setTimeout(resolve, 1000));
      let response;
      try {
        response = await fetch(`/dashboard/claims/${encodeURIComponent(waiting.dataset.claim)}`,
          { headers, cache: "no-store" });
      } catch (_) {
        continue; // the pool restarting: the queue is kept, try again
      }
      if (loggedOut(response)) return false;
      if (!response.ok) {
        step("claim", "failed");
        launchError.textContent = await errorText(response);
        launchError.hidden = false;
        result.innerHTML = "";
        return false;
      }
      result.innerHTML = await response.text();
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("launch-button");
    button.disabled = true;
    launchError.hidden = true;
    result.innerHTML = "";
    steps.hidden = false;
    steps.querySelectorAll("li").forEach((li) => { li.className = ""; });
    step("send", "active");
    const body = {
      agentName: form.elements.agentName.value,
      instructions: form.elements.instructions.value,
      templateId: form.elements.templateId.value,
    };
    if (form.elements.mode.value === "join") body.joinUrl = form.elements.joinUrl.value;
    try {
      const pending = fetch("/dashboard/launch", {
        method: "POST",
        headers: {
          ...headers, "X-CSRF-Token": csrf, "Content-Type": "application/json",
          "Idempotency-Key": (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()),
        },
        body: JSON.stringify(body),
      });
      step("send", "done");
      step("claim", "active");
      const response = await pending;
      if (loggedOut(response)) return;
      if (!response.ok) {
        step("claim", "failed");
        launchError.textContent = await errorText(response);
        launchError.hidden = false;
        return;
      }
      result.innerHTML = await response.text();
      // Queued: follow the claim (its place and ETA) until it has its invite or fails.
      if (!(await follow())) return;
      step("claim", "done");
      step("invite", "active");
      step("invite", "done");
    } catch (_) {
      step("claim", "failed");
      launchError.textContent = "the pool could not be reached";
      launchError.hidden = false;
    } finally {
      button.disabled = false;
      refreshAgents();
      refreshSummary();
    }
  });

  result.addEventListener("click", async (event) => {
    if (event.target.id !== "copy-invite") return;
    const input = document.getElementById("invite-url");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (_) {
      input.select();
      document.execCommand("copy"); // older browsers and non-secure origins
    }
    event.target.textContent = "Copied";
    setTimeout(() => { event.target.textContent = "Copy"; }, 1500);
  });
})();
