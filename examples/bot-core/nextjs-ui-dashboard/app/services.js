// The services of the bot-core example, as the dashboard lists them.
export const services = [
  {
    name: 'rust-core-engine',
    language: 'Rust (std only)',
    port: 8080,
    health: '/health',
    role: 'Order engine',
  },
  {
    name: 'python-ai-service',
    language: 'Python (stdlib only)',
    port: 8000,
    health: '/health',
    role: 'Signals: GET /predict?symbol=…',
  },
  {
    name: 'nextjs-ui-dashboard',
    language: 'Next.js 15',
    port: 3000,
    health: '/api/health',
    role: 'This dashboard',
  },
];
