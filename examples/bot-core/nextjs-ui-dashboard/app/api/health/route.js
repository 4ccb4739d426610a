// Evaluated on every request: a health check must never be a build-time snapshot.
export const dynamic = 'force-dynamic';

export function GET() {
  return Response.json(
    { status: 'ok', service: 'nextjs-ui-dashboard' },
    { headers: { 'Cache-Control': 'no-store' } },
  );
}
