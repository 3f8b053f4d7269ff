#!/usr/bin/env node
// A local SMTP sink for the examples' email sign-in: accepts every message
// on 127.0.0.1 (no TLS, no authentication, nothing relayed), and for each
// one prints and appends to a file the sign-in link it carries, as JSON
// lines `{"to": …, "link": …}`. For development and the end-to-end runs,
// never for real mail.
//
// Usage: node scripts/smtp-sink.mjs [PORT] [FILE]
//   PORT  default 2525 (0: any free port; the chosen one is printed first)
//   FILE  default smtp-sink.jsonl
import { appendFileSync } from "node:fs";
import { createServer } from "node:net";

const port = Number(process.argv[2] ?? 2525);
const file = process.argv[3] ?? "smtp-sink.jsonl";

/** The body as text: quoted-printable soft breaks and escapes undone. */
function decodeQuotedPrintable(raw) {
  return raw
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/** The first link in the message, as the mail client would show it. */
function firstLink(raw) {
  const m = /https?:\/\/[^\s"<>]+/.exec(decodeQuotedPrintable(raw));
  return m ? m[0].replace(/&amp;/g, "&") : null;
}

const server = createServer((socket) => {
  socket.setEncoding("latin1");
  let buffer = "";
  let inData = false;
  let data = "";
  let to = [];
  const reply = (line) => socket.write(`${line}\r\n`);
  reply("220 localhost smtp-sink");
  socket.on("data", (chunk) => {
    buffer += chunk;
    for (;;) {
      if (inData) {
        const end = buffer.indexOf("\r\n.\r\n");
        const atStart = data === "" && buffer.startsWith(".\r\n");
        if (end < 0 && !atStart) return;
        data += atStart ? "" : buffer.slice(0, end);
        buffer = buffer.slice(atStart ? 3 : end + 5);
        inData = false;
        const link = firstLink(data.replace(/^\.\./gm, "."));
        const record = { to: to.join(", "), link };
        appendFileSync(file, `${JSON.stringify(record)}\n`);
        console.log(`mail to ${record.to}: ${link ?? "(no link)"}`);
        data = "";
        to = [];
        reply("250 OK: queued");
        continue;
      }
      const eol = buffer.indexOf("\r\n");
      if (eol < 0) return;
      const line = buffer.slice(0, eol);
      buffer = buffer.slice(eol + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === "EHLO") {
        reply("250-localhost");
        reply("250 8BITMIME");
      } else if (verb === "HELO" || verb === "MAIL" || verb === "RSET" || verb === "NOOP") {
        if (verb === "RSET") to = [];
        reply("250 OK");
      } else if (verb === "RCPT") {
        to.push(line.replace(/^RCPT TO:\s*/i, "").replace(/[<>]/g, ""));
        reply("250 OK");
      } else if (verb === "DATA") {
        inData = true;
        reply("354 end with <CRLF>.<CRLF>");
      } else if (verb === "QUIT") {
        reply("221 bye");
        socket.end();
        return;
      } else {
        reply("502 not implemented");
      }
    }
  });
  socket.on("error", () => {});
});

server.listen(port, "127.0.0.1", () => {
  console.log(`smtp-sink listening on 127.0.0.1:${server.address().port}, writing ${file}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
