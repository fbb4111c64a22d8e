// akool-audio dashboard: the little script the pages need, no library, no build step.
// - Cancel and Retry ask in a dialog before their form is sent (without this script, the
//   service asks on a page of its own).
// - The jobs page keeps itself current: it reads /v1/jobs (with the same filter, search and
//   page as the address bar) and /counts, and updates its rows in place.
// - A page whose <main> has data-refresh (a job in flight, the fleet) fetches itself again
//   and swaps in the new <main>.
// Text from jobs is only ever set with textContent: nothing a job holds becomes markup.
"use strict";

(function () {
  const FAST = 2500;
  const IDLE = 10000;
  const serverNow = Number(document.body.dataset.now || 0);
  const skew = serverNow ? serverNow - Date.now() / 1000 : 0;

  function now() {
    return Date.now() / 1000 + skew;
  }

  function age(seconds) {
    const s = Math.max(0, seconds);
    if (s < 60) return Math.floor(s) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h";
    return Math.floor(s / 86400) + " d";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, seconds);
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
    return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  }

  function clockTime(t) {
    return new Date(t * 1000).toISOString().slice(11, 19) + " UTC";
  }

  function tickAges(root) {
    for (const el of (root || document).querySelectorAll("time[data-t]")) {
      el.textContent = age(now() - Number(el.dataset.t));
    }
  }

  function toLogin() {
    const here = location.pathname + location.search;
    location.assign("/login?next=" + encodeURIComponent(here));
  }

  async function getJSON(url) {
    const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (res.status === 401) {
      toLogin();
      throw new Error("logged out");
    }
    if (!res.ok) throw new Error(url + ": HTTP " + res.status);
    return res.json();
  }

  // -- confirmation ---------------------------------------------------------------------------

  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    const confirmed = form.elements.namedItem("confirmed");
    if (!confirmed || confirmed.value === "yes") return;
    const dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") return; // the service asks instead
    ev.preventDefault();
    document.getElementById("confirm-text").textContent = form.dataset.confirm;
    document.getElementById("confirm-yes").textContent = form.dataset.confirmYes || "Yes";
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      function () {
        if (dialog.returnValue === "yes") {
          confirmed.value = "yes";
          form.submit();
        }
      },
      { once: true },
    );
    dialog.showModal();
  });

  // -- the jobs page --------------------------------------------------------------------------

  function chipFor(state) {
    return document.querySelector('.chip[data-filter="' + CSS.escape(state) + '"]');
  }

  function badge(state) {
    const span = document.createElement("span");
    const chip = chipFor(state);
    const tone = chip ? Array.from(chip.classList).find((c) => c.startsWith("tone-")) : "tone-off";
    span.className = "state " + (tone || "tone-off");
    span.dataset.state = state;
    const sign = document.createElement("span");
    sign.className = "sign";
    sign.setAttribute("aria-hidden", "true");
    const chipSign = chip && chip.querySelector(".sign");
    sign.textContent = chipSign ? chipSign.textContent : "?";
    span.append(sign, " " + state);
    return span;
  }

  function cell(label, className) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (className) td.className = className;
    return td;
  }

  function cells(job) {
    const id = cell("Job", "id");
    const a = document.createElement("a");
    a.href = "/jobs/" + encodeURIComponent(job.job_id);
    a.textContent = job.job_id;
    id.append(a);
    if (job.attempt > 1) {
      const n = document.createElement("span");
      n.className = "attempt";
      n.title = "attempt";
      n.textContent = "#" + job.attempt;
      id.append(" ", n);
    }
    const state = cell("State", "st");
    state.append(badge(job.state));
    const kind = cell("Kind");
    kind.textContent = job.kind;
    const voice = cell("Voice", "voice");
    voice.textContent = job.voice || "—";
    const when = cell("Age");
    const time = document.createElement("time");
    time.dataset.t = String(job.created_at);
    time.dateTime = new Date(job.created_at * 1000).toISOString();
    time.title = clockTime(job.created_at);
    time.textContent = age(now() - job.created_at);
    when.append(time);
    const polls = cell("Polls", "num");
    polls.textContent = String(job.polls);
    const took = cell("Duration", "num");
    took.textContent = duration(job.duration);
    const error = cell("Error", "error");
    error.textContent = job.error_code || "";
    return [id, state, kind, voice, when, polls, took, error];
  }

  function signature(job) {
    return [job.state, job.polls, job.attempt, job.error_code, job.duration].join("|");
  }

  function reconcile(tbody, jobs, flash) {
    const existing = new Map();
    for (const tr of tbody.querySelectorAll("tr[data-job]")) existing.set(tr.dataset.job, tr);
    const rows = jobs.map(function (job) {
      let tr = existing.get(job.job_id);
      const sig = signature(job);
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.job = job.job_id;
      }
      if (tr.dataset.sig !== sig) {
        tr.replaceChildren(...cells(job));
        tr.dataset.state = job.state;
        tr.dataset.sig = sig;
        if (flash) {
          tr.classList.remove("changed");
          void tr.offsetWidth; // restart the highlight
          tr.classList.add("changed");
        }
      }
      existing.delete(job.job_id);
      return tr;
    });
    for (const gone of existing.values()) gone.remove();
    rows.forEach((tr, i) => {
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
  }

  function showCounts(counts) {
    for (const el of document.querySelectorAll("[data-count]")) {
      const key = el.dataset.count;
      const n = key === "all" ? counts.total : counts.by_state[key] || 0;
      el.textContent = String(n);
      const chip = el.closest(".chip");
      if (chip && key !== "all") chip.classList.toggle("zero", n === 0);
    }
  }

  function startJobs(table) {
    const tbody = table.tBodies[0];
    const final = new Set((table.dataset.final || "").split(","));
    const live = document.getElementById("live");
    const empty = document.getElementById("empty");
    const query = new URLSearchParams(location.search);
    const params = new URLSearchParams();
    for (const name of ["state", "q", "cursor"]) {
      const value = query.get(name);
      if (value) params.set(name, value);
    }
    params.set("limit", table.dataset.limit || "50");
    let first = true; // the rows the service rendered are redrawn once, without a highlight

    async function refresh() {
      let delay = IDLE;
      try {
        const [list, counts] = await Promise.all([getJSON("/v1/jobs?" + params), getJSON("/counts")]);
        reconcile(tbody, list.jobs, !first);
        first = false;
        showCounts(counts);
        empty.hidden = list.jobs.length > 0;
        const moving = counts.in_flight > 0 || list.jobs.some((j) => !final.has(j.state));
        delay = moving ? FAST : IDLE;
        live.classList.toggle("on", moving);
        live.textContent =
          (moving ? counts.in_flight + " in flight · live" : "nothing in flight") +
          " · updated " + clockTime(now());
      } catch (err) {
        live.classList.remove("on");
        live.textContent = "could not refresh (" + err.message + "); trying again";
      }
      later(refresh, delay);
    }
    refresh();
  }

  function later(fn, delay) {
    setTimeout(function () {
      if (document.hidden) {
        document.addEventListener("visibilitychange", () => fn(), { once: true });
      } else {
        fn();
      }
    }, delay);
  }

  // -- pages that refresh themselves ----------------------------------------------------------

  function startRefresh(main) {
    async function swap() {
      const dialog = document.getElementById("confirm-dialog");
      if (dialog && dialog.open) return later(swap, FAST);
      let res;
      try {
        res = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      } catch (err) {
        return later(swap, IDLE);
      }
      if (res.redirected && new URL(res.url).pathname === "/login") return toLogin();
      if (!res.ok) return later(swap, IDLE);
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.getElementById("main");
      if (!fresh) return later(swap, IDLE);
      const open = Array.from(main.querySelectorAll("details[open][id]"), (d) => d.id);
      main.replaceChildren(...Array.from(fresh.childNodes));
      for (const name of ["data-refresh", "data-state"]) {
        if (fresh.hasAttribute(name)) main.setAttribute(name, fresh.getAttribute(name));
        else main.removeAttribute(name);
      }
      for (const id of open) {
        const d = document.getElementById(id);
        if (d) d.open = true;
      }
      tickAges(main);
      const every = Number(main.dataset.refresh || 0);
      if (every) later(swap, every);
    }
    later(swap, Number(main.dataset.refresh));
  }

  function start() {
    tickAges();
    setInterval(tickAges, 5000);
    const table = document.getElementById("jobs");
    if (table) startJobs(table);
    const main = document.getElementById("main");
    if (main && main.dataset.refresh) startRefresh(main);
  }

  start();
})();
