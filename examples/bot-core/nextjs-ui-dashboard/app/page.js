import { services } from './services';

// Read VERSION when the page is requested, not when it is built.
export const dynamic = 'force-dynamic';

export default function Home() {
  const version = process.env.VERSION || 'dev';
  return (
    <main>
      <header>
        <h1>bot-core dashboard</h1>
        <p className="meta">
          service <code>nextjs-ui-dashboard</code> · version <code>{version}</code>
        </p>
      </header>
      <table>
        <caption>Services</caption>
        <thead>
          <tr>
            <th scope="col">Service</th>
            <th scope="col">Role</th>
            <th scope="col">Built with</th>
            <th scope="col">Port</th>
            <th scope="col">Health</th>
          </tr>
        </thead>
        <tbody>
          {services.map((s) => (
            <tr key={s.name}>
              <td><code>{s.name}</code></td>
              <td>{s.role}</td>
              <td>{s.language}</td>
              <td>{s.port}</td>
              <td><code>GET {s.health}</code></td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  );
}
