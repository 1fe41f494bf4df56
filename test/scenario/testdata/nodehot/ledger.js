'use strict';
// The node scenario, run with no flag: compute spins in settleAccounts,
// a named function the JIT optimizes; callback spins in an anonymous
// callback that the event loop runs again and again (setImmediate), as a
// server's handler would.

function settleAccounts(rounds) {
  let balance = 1;
  for (let i = 0; i < rounds; i++) {
    balance = (balance * 1103515245 + 12345) % 2147483648;
  }
  return balance;
}

const mode = process.argv[2] || 'compute';
let sink = 0;
if (mode === 'compute') {
  sink += settleAccounts(1e6);
  console.log('ready');
  for (;;) sink += settleAccounts(1e7);
} else if (mode === 'callback') {
  console.log('ready');
  const tick = () => {
    let h = sink | 0;
    for (let i = 0; i < 2e6; i++) {
      h = (h ^ i) * 16777619 | 0;
    }
    sink = h;
    setImmediate(tick);
  };
  setImmediate(tick);
} else {
  console.error('usage: ledger.js compute|callback');
  process.exit(2);
}
