import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router';
import { App } from './App';
import './styles.css';

const element = document.getElementById('root');
if (element === null) throw new Error('index.html has no #root');

createRoot(element, {
  // Errors caught by a boundary are shown on the page where they happened; the console stays
  // quiet (a failing query is not a bug of the dashboard).
  onCaughtError: () => {},
}).render(
  <StrictMode>
    <BrowserRouter basename="/dashboard">
      <App />
    </BrowserRouter>
  </StrictMode>,
);
