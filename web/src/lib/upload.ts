import { explain, withCsrf } from "../api/client";

export interface Submitted {
  media_id: string;
  job_id: string;
  workflow_id: string;
}

/** Upload with progress (fetch reports none for a request body): XMLHttpRequest, with the session's CSRF token. */
export function upload(
  file: Blob,
  name: string,
  fields: Record<string, string>,
  onProgress: (fraction: number) => void,
): Promise<Submitted> {
  const form = new FormData();
  form.append("file", file, name);
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/media/upload");
    const headers = new Headers();
    withCsrf(headers, "POST");
    headers.forEach((v, k) => xhr.setRequestHeader(k, v));
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON: explain() falls back to the status */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as Submitted);
      else reject(new Error(explain(body, xhr.status)));
    };
    xhr.onerror = () => reject(new Error("the upload was interrupted (network error)"));
    xhr.send(form);
  });
}
