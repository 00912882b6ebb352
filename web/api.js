// The owner API of this identity, as the page uses it: same origin, the
// session cookie (sent by the browser, never readable here), JSON in and out.
// Every failure is an ApiError: status 0 when the daemon could not be reached.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function request(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "unreachable", "The server cannot be reached.");
  }
  if (response.status === 204)
    return null;
  let value = null;
  try {
    value = await response.json();
  } catch {
    // A front (a proxy, a supervisor's 502) may answer without JSON.
  }
  if (!response.ok) {
    const code = value && typeof value.error === "string" ? value.error : `http_${response.status}`;
    const message = value && typeof value.message === "string" ? value.message : `The server answered ${response.status}.`;
    throw new ApiError(response.status, code, message);
  }
  return value;
}

export const identity = () => request("GET", "/.well-known/posta");
export const signIn = (credentials) => request("POST", "/api/session", credentials);
export const signOut = () => request("DELETE", "/api/session");
export const messages = (box, before) =>
  request("GET", `/api/messages?box=${box}&limit=50` + (before ? `&before=${encodeURIComponent(before)}` : ""));
export const message = (id) => request("GET", `/api/messages/${encodeURIComponent(id)}`);
export const markRead = (id, read) => request("PATCH", `/api/messages/${encodeURIComponent(id)}`, { read });
export const remove = (id) => request("DELETE", `/api/messages/${encodeURIComponent(id)}`);
export const send = (to, subject, body) =>
  request("POST", "/api/messages", { to, subject, body, content_type: "text/plain" });
export const deliveries = () => request("GET", "/api/deliveries");
