export const metadata = { title: "sessiond + Next.js + Better Auth" };

export default function RootLayout({ children }: { children: React.ReactNode }) {
  return (
    <html lang="en">
      <body style={{ fontFamily: "system-ui, sans-serif", maxWidth: 640, margin: "2rem auto" }}>{children}</body>
    </html>
  );
}
