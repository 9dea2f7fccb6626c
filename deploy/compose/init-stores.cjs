// Creates the S3 bucket and the Azure container the compose stack's gateway serves, and puts
// hello.txt in each. Runs once at `docker compose up`, inside the cachegate image (whose
// node_modules has both SDKs), and retries while the servers start. Also used by the container
// test against s3rver and Azurite on the host.
'use strict';
const { S3Client, CreateBucketCommand, PutObjectCommand } = require('@aws-sdk/client-s3');
const { BlobServiceClient } = require('@azure/storage-blob');

const DEADLINE_MS = Number(process.env.INIT_DEADLINE_MS || 120000);
const HELLO = 'Hello from cachegate!\n';
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

async function retry(what, fn) {
  const start = Date.now();
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() - start > DEADLINE_MS) throw new Error(`${what}: ${err.message}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

async function main() {
  const s3 = new S3Client({
    endpoint: env('S3_ENDPOINT'),
    region: process.env.S3_REGION || 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: env('S3_ACCESS_KEY'), secretAccessKey: env('S3_SECRET_KEY') },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const bucket = env('S3_BUCKET');
  await retry(`create bucket ${bucket}`, async () => {
    try {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    } catch (err) {
      if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
    }
  });
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'hello.txt', Body: HELLO, ContentType: 'text/plain' }));
  console.log(JSON.stringify({ msg: 'bucket ready', bucket }));

  const container = BlobServiceClient.fromConnectionString(env('AZURE_CONNECTION_STRING')).getContainerClient(env('AZURE_CONTAINER'));
  await retry(`create container ${container.containerName}`, () => container.createIfNotExists());
  await container.getBlockBlobClient('hello.txt').upload(HELLO, Buffer.byteLength(HELLO), { blobHTTPHeaders: { blobContentType: 'text/plain' } });
  console.log(JSON.stringify({ msg: 'container ready', container: container.containerName }));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(JSON.stringify({ msg: 'init failed', err: err.message }));
    process.exit(1);
  },
);
