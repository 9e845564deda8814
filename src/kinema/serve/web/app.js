// The kinema web page: create a task, follow its status, play the video, list recent tasks.
// It speaks the same MiniMax API as any other client (create -> query -> retrieve -> download URL).
"use strict";

const $ = (id) => document.getElementById(id);
let apiKey = localStorage.getItem("kinema.apiKey") || "";
let current = null;  // task id being followed

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  const resp = await fetch(path, body === undefined
    ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  if (!resp.ok) throw new Error(`HTTP ${resp.status} from ${path}`);
  return resp.json();
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(el, status, message) {
  el.dataset.status = status;
  el.textContent = message ? `${status}: ${message}` : status;
}

async function loadInfo() {
  const info = await api("/v1/kinema/info");
  $("model").textContent = `${info.model} · ${info.width}×${info.height}, ${info.frames} frames`;
  $("key-row").hidden = !info.auth_required;
  $("key").value = apiKey;
}

async function refreshTasks() {
  const data = await api("/v1/kinema/tasks?limit=20");
  if (data.base_resp.status_code !== 0) return;
  const list = $("tasks");
  list.replaceChildren(...data.tasks.map((task) => {
    const li = document.createElement("li");
    li.dataset.taskId = task.task_id;
    const status = document.createElement("span");
    status.className = "status";
    setStatus(status, task.status);
    const prompt = document.createElement("span");
    prompt.className = "prompt";
    prompt.textContent = task.prompt;
    prompt.title = task.status_msg || task.prompt;
    li.append(status, prompt);
    li.addEventListener("click", () => follow(task.task_id));
    return li;
  }));
  $("no-tasks").hidden = data.tasks.length > 0;
}

async function play(fileId) {
  const data = await api(`/v1/files/retrieve?file_id=${encodeURIComponent(fileId)}`);
  if (data.base_resp.status_code !== 0) throw new Error(data.base_resp.status_msg);
  $("player").src = data.file.download_url;  // signed URL: no key needed
}

async function follow(taskId) {
  current = taskId;
  $("current").hidden = false;
  $("task-id").textContent = taskId;
  $("player").removeAttribute("src");
  $("player").load();
  let last = "";
  while (current === taskId) {
    const data = await api(`/v1/query/video_generation?task_id=${encodeURIComponent(taskId)}`);
    const status = data.status || "Fail";
    const failed = status === "Fail" || data.base_resp.status_code !== 0;
    setStatus($("status"), failed ? "Fail" : status, failed ? data.base_resp.status_msg : "");
    if (status !== last) { last = status; refreshTasks().catch(() => {}); }
    if (failed) return;
    if (status === "Success") { await play(data.file_id); return; }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function create(event) {
  event.preventDefault();
  showError("");
  apiKey = $("key").value.trim();
  localStorage.setItem("kinema.apiKey", apiKey);
  const body = { model: "kinema", prompt: $("prompt").value };
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  if ($("steps").value !== "") body.steps = Number($("steps").value);
  $("generate").disabled = true;
  try {
    const data = await api("/v1/video_generation", body);
    if (data.base_resp.status_code !== 0) {
      showError(`${data.base_resp.status_code}: ${data.base_resp.status_msg}`);
      return;
    }
    follow(data.task_id).catch((e) => showError(e.message));
  } catch (e) {
    showError(e.message);
  } finally {
    $("generate").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("create").addEventListener("submit", create);
  loadInfo().then(refreshTasks).catch((e) => showError(e.message));
  setInterval(() => refreshTasks().catch(() => {}), 5000);
});
