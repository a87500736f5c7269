// A JSON-RPC proxy in front of a node that serves one bad block on demand,
// for the follower's recovery test in scripts/e2e.sh.
//
//   node bad-block-proxy.mjs UPSTREAM_URL CONTROL_FILE
//
// Prints "listening on http://127.0.0.1:PORT". While CONTROL_FILE holds a
// block number, the receipts of that block (eth_getBlockReceipts, alone or
// in a batch) come back with the first receipt's status flipped, so their
// root no longer matches the block's receiptsRoot: a block no importer can
// verify. An empty file passes every answer through unchanged: the node
// "repaired" the block.
import fs from 'node:fs'
import http from 'node:http'

const [upstream, control] = process.argv.slice(2)
if (!upstream || !control) {
  console.error('usage: node bad-block-proxy.mjs UPSTREAM_URL CONTROL_FILE')
  process.exit(2)
}

function badBlock() {
  const text = fs.readFileSync(control, 'utf8').trim()
  return text === '' ? null : Number(text)
}

const server = http.createServer(async (req, res) => {
  try {
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const body = Buffer.concat(chunks).toString()
    const answer = await fetch(upstream, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    let text = await answer.text()
    const bad = badBlock()
    if (bad !== null && answer.ok) {
      const calls = [].concat(JSON.parse(body))
      const parsed = JSON.parse(text)
      const replies = [].concat(parsed)
      for (const call of calls) {
        if (call.method !== 'eth_getBlockReceipts' || Number(call.params?.[0]) !== bad) continue
        const reply = replies.find((r) => r.id === call.id)
        const first = reply?.result?.[0]
        if (first) first.status = first.status === '0x1' ? '0x0' : '0x1'
      }
      text = JSON.stringify(parsed)
    }
    res.writeHead(answer.status, { 'content-type': 'application/json' })
    res.end(text)
  } catch (e) {
    res.writeHead(502, { 'content-type': 'text/plain' })
    res.end(String(e))
  }
})

server.listen(0, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`)
})
