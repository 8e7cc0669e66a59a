'use strict';
// Runs the official Smartcar Node SDK's v3 calls against the simulator and prints one JSON object
// with each call's outcome. Driven by tests/system/contract_v3/test_node_sdk.py, which passes a JSON
// spec as the only argument and sets SMARTCAR_API_V3_ORIGIN to the simulator's URL.
//
// The SDK's v3 surface: smartcar.getVehicle, Vehicle#getSignals / #getSignal, the generic
// Vehicle#request(method, path, body, headers, '3'), and hashChallenge / verifyPayload.

const smartcar = require('smartcar');

async function outcome(call) {
  try {
    const value = await call();
    return {ok: true, value};
  } catch (error) {
    return {
      ok: false,
      error: {name: error.name, statusCode: error.statusCode, type: error.type, message: error.message},
    };
  }
}

async function main() {
  const spec = JSON.parse(process.argv[2]);
  const userHeader = {'sc-user-id': spec.userId};
  const asApp = new smartcar.Vehicle(spec.vehicleId, spec.appToken);
  const results = {};

  results.getVehicle = await outcome(async() => (await smartcar.getVehicle(spec.appToken, spec.vehicleId)).body);
  // No sc-user-id is sent by these two helpers: with an app token they cannot work on v3.
  results.getSignalsAppToken = await outcome(async() => (await asApp.getSignals()).body);
  results.requestSignals = await outcome(
    async() => (await asApp.request('get', 'signals', null, userHeader, '3')).body,
  );
  results.start = await outcome(
    async() => (await asApp.request('post', 'commands/charge/start', null, userHeader, '3')).body,
  );
  results.setLimit = await outcome(async() => (await asApp.request(
    'post', 'commands/charge/set-limit', {data: {attributes: {percent: 75}}}, userHeader, '3',
  )).body);
  results.stop = await outcome(
    async() => (await asApp.request('post', 'commands/charge/stop', null, userHeader, '3')).body,
  );
  results.notConnected = await outcome(async() => (await asApp.request(
    'post', 'commands/charge/start', null, {'sc-user-id': 'not-connected'}, '3',
  )).body);
  results.hashChallenge = smartcar.hashChallenge(spec.amt, spec.challenge);
  results.verifyPayload = smartcar.verifyPayload(spec.amt, spec.webhook.signature, JSON.parse(spec.webhook.body));
  results.verifyTampered = smartcar.verifyPayload(
    spec.amt, spec.webhook.signature, JSON.parse(spec.webhook.body.replace('"LIVE"', '"TEST"')),
  );
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exit(1);
});
