import './globals.css';

export const metadata = {
  title: 'bot-core dashboard',
  description: 'Status of the bot-core example services',
};

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
