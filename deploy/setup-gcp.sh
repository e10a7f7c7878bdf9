#!/usr/bin/env bash
# One-time (and re-runnable) GCP setup for the iris service: APIs, bucket + lifecycle, Pub/Sub topic + bucket
# notification, service accounts with least-privilege IAM and Workload Identity, Artifact Registry, the GKE cluster,
# the Kubernetes Secrets, the trusted evaluation set and the Cloud Build trigger. Every resource is described first and created only when missing;
# IAM bindings are additive and idempotent. Secrets are never overwritten: a signing key whose public key the
# predictors do not trust yet would orphan every model it signs (see the README for a key rotation).
#
# usage: deploy/setup-gcp.sh --project PROJECT_ID [--region europe-west1] [--bucket PROJECT_ID-iris]
#          [--cluster iris] [--standard] [--github-owner OWNER --github-repo REPO] [--domain HOST] [--dry-run]
#   --dry-run  print every command instead of running it (nothing is read from or written to GCP)
#   --standard a GKE Standard cluster with Workload Identity instead of Autopilot
#   --domain   host name of the Gateway's Google-managed certificate (its DNS A record: the address iris-ip)
# Environment overrides: REPOSITORY (iris), NAMESPACE (iris), MODEL_EVENTS_TOPIC (model-events),
#   DATA_EVENTS_TOPIC (data-events), WATCH_SUBSCRIPTION (trainer-data-events),
#   MODEL_RETENTION_DAYS (180), BRANCH_PATTERN (^main$), OVERLAY (prod), PYTHON (python3, with the project's
#   requirements: it signs and uploads the evaluation set as you, through Application Default Credentials).
set -euo pipefail

DRY_RUN=false
PROJECT_ID=${PROJECT_ID:-}
REGION=${REGION:-europe-west1}
BUCKET=${BUCKET:-}
CLUSTER=${CLUSTER:-iris}
AUTOPILOT=true
GITHUB_OWNER=${GITHUB_OWNER:-}
GITHUB_REPO=${GITHUB_REPO:-}
DOMAIN=${DOMAIN:-}
REPOSITORY=${REPOSITORY:-iris}
NAMESPACE=${NAMESPACE:-iris}
TOPIC=${MODEL_EVENTS_TOPIC:-model-events}
DATA_TOPIC=${DATA_EVENTS_TOPIC:-data-events}
WATCH_SUBSCRIPTION=${WATCH_SUBSCRIPTION:-trainer-data-events}
MODEL_RETENTION_DAYS=${MODEL_RETENTION_DAYS:-180}
BRANCH_PATTERN=${BRANCH_PATTERN:-^main\$}
OVERLAY=${OVERLAY:-prod}
PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECRET=iris-secrets
SIGNING_SECRET=iris-signing-key
PUBLIC_KEYS_SECRET=iris-model-public-keys

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while (($#)); do
  case $1 in
    --project) PROJECT_ID=$2; shift 2 ;;
    --region) REGION=$2; shift 2 ;;
    --bucket) BUCKET=$2; shift 2 ;;
    --cluster) CLUSTER=$2; shift 2 ;;
    --standard) AUTOPILOT=false; shift ;;
    --github-owner) GITHUB_OWNER=$2; shift 2 ;;
    --github-repo) GITHUB_REPO=$2; shift 2 ;;
    --domain) DOMAIN=$2; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
  esac
done
[[ -n $PROJECT_ID ]] || { echo "--project (or PROJECT_ID) is required" >&2; exit 2; }
BUCKET=${BUCKET:-$PROJECT_ID-iris}
SA_DOMAIN=$PROJECT_ID.iam.gserviceaccount.com
WORKDIR=$(mktemp -d)
trap 'rm -rf "$WORKDIR"' EXIT

# fd 3 is the transcript: commands stay visible when their own output is discarded or captured.
exec 3>&1
say() { printf '\n# %s\n' "$*" >&3; }
show() { { printf '+'; printf ' %q' "$@"; printf '\n'; } >&3; }
# run CMD...: print it, and run it unless --dry-run.
run() { show "$@"; if ! $DRY_RUN; then "$@"; fi; }
# ensure CHECK... -- CREATE...: run CREATE only when CHECK fails (CHECK is shown too in --dry-run).
ensure() {
  local check=()
  while [[ $1 != -- ]]; do check+=("$1"); shift; done
  shift
  if $DRY_RUN; then show "${check[@]}"; show "$@"; return; fi
  if "${check[@]}" >/dev/null 2>&1; then echo "exists: ${check[*]}"; else run "$@"; fi
}
# value PLACEHOLDER CMD...: CMD's output, or PLACEHOLDER in --dry-run.
value() {
  local placeholder=$1
  shift
  if $DRY_RUN; then show "$@"; echo "$placeholder"; else "$@"; fi
}
project_role() { run gcloud projects add-iam-policy-binding "$PROJECT_ID" --member="$1" --role="$2" --condition=None --quiet >/dev/null; }
# bucket_role MEMBER ROLE TITLE PREFIX...: the role on objects under the prefixes only (and listing with them).
bucket_role() {
  local member=$1 role=$2 title=$3 expr="" prefix
  shift 3
  for prefix in "$@"; do
    expr+="${expr:+ || }resource.name.startsWith(\"projects/_/buckets/$BUCKET/objects/$prefix\")"
    expr+=" || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"$prefix\")"
  done
  printf 'title: %s\nexpression: %s\n' "$title" "'$expr'" >"$WORKDIR/$title.yaml"
  echo "# condition $title: $expr" >&3
  run gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" --member="$member" --role="$role" \
    --condition-from-file="$WORKDIR/$title.yaml" >/dev/null
}

enable_apis() {
  say "APIs"
  run gcloud services enable --project="$PROJECT_ID" storage.googleapis.com pubsub.googleapis.com \
    artifactregistry.googleapis.com container.googleapis.com cloudbuild.googleapis.com cloudfunctions.googleapis.com \
    run.googleapis.com eventarc.googleapis.com iam.googleapis.com iamcredentials.googleapis.com \
    compute.googleapis.com certificatemanager.googleapis.com
}

create_bucket() {
  say "Bucket gs://$BUCKET: uniform access, no versioning, superseded models deleted $MODEL_RETENTION_DAYS days after retirement"
  ensure gcloud storage buckets describe "gs://$BUCKET" -- \
    gcloud storage buckets create "gs://$BUCKET" --project="$PROJECT_ID" --location="$REGION" \
    --uniform-bucket-level-access --public-access-prevention
  cat >"$WORKDIR/lifecycle.json" <<EOF
{"rule": [
  {"action": {"type": "Delete"}, "condition": {"daysSinceCustomTime": $MODEL_RETENTION_DAYS, "matchesPrefix": ["models/model-"]}},
  {"action": {"type": "Delete"}, "condition": {"age": 7, "matchesPrefix": ["models/claims/"]}}
]}
EOF
  echo "# lifecycle: $(tr -d '\n' <"$WORKDIR/lifecycle.json")"
  run gcloud storage buckets update "gs://$BUCKET" --no-versioning --lifecycle-file="$WORKDIR/lifecycle.json"
}

create_events() {
  say "Pub/Sub topic $TOPIC and the bucket notification for models/"
  ensure gcloud pubsub topics describe "$TOPIC" --project="$PROJECT_ID" -- \
    gcloud pubsub topics create "$TOPIC" --project="$PROJECT_ID"
  local agent
  agent=$(value "service-PROJECT_NUMBER@gs-project-accounts.iam.gserviceaccount.com" \
    gcloud storage service-agent --project="$PROJECT_ID")
  # The Cloud Storage service agent publishes the notification, and Eventarc's storage trigger needs it to publish
  # to Eventarc's own topic in the project, hence project scope.
  project_role "serviceAccount:$agent" roles/pubsub.publisher
  notification "$TOPIC" models/
  say "Pub/Sub topic $DATA_TOPIC, the bucket notification for data/ and the trainer's subscription $WATCH_SUBSCRIPTION"
  ensure gcloud pubsub topics describe "$DATA_TOPIC" --project="$PROJECT_ID" -- \
    gcloud pubsub topics create "$DATA_TOPIC" --project="$PROJECT_ID"
  notification "$DATA_TOPIC" data/
  # One durable subscription for the single watcher replica: events wait here while it restarts (7 days).
  ensure gcloud pubsub subscriptions describe "$WATCH_SUBSCRIPTION" --project="$PROJECT_ID" -- \
    gcloud pubsub subscriptions create "$WATCH_SUBSCRIPTION" --project="$PROJECT_ID" --topic="$DATA_TOPIC" \
    --ack-deadline=600 --message-retention-duration=7d --expiration-period=never
}

# notification TOPIC PREFIX: the bucket's OBJECT_FINALIZE notifications for objects under PREFIX, unless present.
notification() {
  local existing="[]"
  $DRY_RUN || existing=$(gcloud storage buckets notifications list "gs://$BUCKET" --format=json)
  if grep -q "topics/$1\"" <<<"$existing"; then
    echo "exists: notification gs://$BUCKET -> $1"
  else
    run gcloud storage buckets notifications create "gs://$BUCKET" --topic="projects/$PROJECT_ID/topics/$1" \
      --event-types=OBJECT_FINALIZE --payload-format=json --object-prefix="$2"
  fi
}

create_service_accounts() {
  say "Service accounts"
  local name
  for name in iris-predictor iris-trainer iris-ingest iris-build; do
    ensure gcloud iam service-accounts describe "$name@$SA_DOMAIN" --project="$PROJECT_ID" -- \
      gcloud iam service-accounts create "$name" --project="$PROJECT_ID" --display-name="iris $name"
  done
}

grant_storage() {
  say "Bucket access, each limited to its prefixes by an IAM condition"
  local predictor="serviceAccount:iris-predictor@$SA_DOMAIN" trainer="serviceAccount:iris-trainer@$SA_DOMAIN"
  local ingest="serviceAccount:iris-ingest@$SA_DOMAIN"
  bucket_role "$predictor" roles/storage.objectViewer predictor-read-models models/
  # the live accuracy document the trainer's feedback joiner writes (each pod's model agent reads it)
  bucket_role "$predictor" roles/storage.objectViewer predictor-read-accuracy feedback/accuracy.json
  # the prediction log: create-only (the shipper uploads with if_generation_match=0; never overwrites or deletes)
  bucket_role "$predictor" roles/storage.objectCreator predictor-write-predictions predictions/
  bucket_role "$trainer" roles/storage.objectViewer trainer-read-data data/
  bucket_role "$trainer" roles/storage.objectCreator trainer-seed-data data/  # seeds data/iris.csv when data/ is empty
  bucket_role "$trainer" roles/storage.objectUser trainer-write-models models/  # claims are replaced in place
  bucket_role "$trainer" roles/storage.objectUser trainer-write-reports reports/  # reports on held-back data files
  # eval/ (the trusted evaluation set): the trainer reads it, the ingest function never reaches it, and only the
  # operator (project owner, not a service account) writes it, so no upload can move the gate's anchor.
  bucket_role "$trainer" roles/storage.objectViewer trainer-read-eval eval/
  bucket_role "$ingest" roles/storage.objectUser ingest-take-incoming incoming/
  bucket_role "$ingest" roles/storage.objectViewer ingest-list-outputs data/ quarantine/
  bucket_role "$ingest" roles/storage.objectCreator ingest-write-outputs data/ quarantine/
}

grant_pubsub() {
  say "Predictor subscriptions: create/consume/delete its own, attach them to $TOPIC only"
  # roles/pubsub.editor would also let it delete topics and other subscriptions; this custom role holds only what
  # predictor/events.py calls. Subscription creation is checked on the project, attaching on the topic.
  ensure gcloud iam roles describe irisSubscriptionManager --project="$PROJECT_ID" -- \
    gcloud iam roles create irisSubscriptionManager --project="$PROJECT_ID" --title="iris predictor subscriptions" \
    --permissions=pubsub.subscriptions.create,pubsub.subscriptions.delete,pubsub.subscriptions.get,pubsub.subscriptions.consume
  project_role "serviceAccount:iris-predictor@$SA_DOMAIN" "projects/$PROJECT_ID/roles/irisSubscriptionManager"
  run gcloud pubsub topics add-iam-policy-binding "$TOPIC" --project="$PROJECT_ID" \
    --member="serviceAccount:iris-predictor@$SA_DOMAIN" --role=roles/pubsub.subscriber >/dev/null
  say "Trainer: consume its one subscription $WATCH_SUBSCRIPTION, nothing else in Pub/Sub"
  run gcloud pubsub subscriptions add-iam-policy-binding "$WATCH_SUBSCRIPTION" --project="$PROJECT_ID" \
    --member="serviceAccount:iris-trainer@$SA_DOMAIN" --role=roles/pubsub.subscriber >/dev/null
}

grant_function() {
  say "Ingest function trigger: Eventarc delivers as iris-ingest"
  project_role "serviceAccount:iris-ingest@$SA_DOMAIN" roles/eventarc.eventReceiver
  project_role "serviceAccount:iris-ingest@$SA_DOMAIN" roles/run.invoker
}

create_registry() {
  say "Artifact Registry $REPOSITORY"
  ensure gcloud artifacts repositories describe "$REPOSITORY" --project="$PROJECT_ID" --location="$REGION" -- \
    gcloud artifacts repositories create "$REPOSITORY" --project="$PROJECT_ID" --location="$REGION" \
    --repository-format=docker --description="iris predictor and trainer images"
}

create_cluster() {
  if $AUTOPILOT; then
    say "GKE Autopilot cluster $CLUSTER (Workload Identity is always on)"
    ensure gcloud container clusters describe "$CLUSTER" --project="$PROJECT_ID" --region="$REGION" -- \
      gcloud container clusters create-auto "$CLUSTER" --project="$PROJECT_ID" --region="$REGION" \
      --release-channel=regular
  else
    say "GKE Standard cluster $CLUSTER with Workload Identity"
    ensure gcloud container clusters describe "$CLUSTER" --project="$PROJECT_ID" --region="$REGION" -- \
      gcloud container clusters create "$CLUSTER" --project="$PROJECT_ID" --region="$REGION" \
      --release-channel=regular --workload-pool="$PROJECT_ID.svc.id.goog" --num-nodes=1 \
      --enable-autoscaling --min-nodes=1 --max-nodes=3 --shielded-secure-boot --gateway-api=standard
  fi
}

# The Gateway's global address and the certificate map it names (k8s/base/gateway.yaml: iris-ip, iris-certmap).
create_gateway_tls() {
  say "Gateway address iris-ip and certificate map iris-certmap"
  ensure gcloud compute addresses describe iris-ip --global --project="$PROJECT_ID" -- \
    gcloud compute addresses create iris-ip --global --project="$PROJECT_ID"
  if [[ -z $DOMAIN ]]; then
    echo "skipped: the certificate needs --domain HOST (point HOST's A record at the address iris-ip)"
    return
  fi
  ensure gcloud certificate-manager certificates describe iris-cert --project="$PROJECT_ID" -- \
    gcloud certificate-manager certificates create iris-cert --project="$PROJECT_ID" --domains="$DOMAIN"
  ensure gcloud certificate-manager maps describe iris-certmap --project="$PROJECT_ID" -- \
    gcloud certificate-manager maps create iris-certmap --project="$PROJECT_ID"
  ensure gcloud certificate-manager maps entries describe iris-cert-entry --map=iris-certmap --project="$PROJECT_ID" -- \
    gcloud certificate-manager maps entries create iris-cert-entry --map=iris-certmap --project="$PROJECT_ID" \
    --certificates=iris-cert --hostname="$DOMAIN"
}

bind_workload_identity() {
  say "Workload Identity: Kubernetes ServiceAccounts $NAMESPACE/iris-predictor and $NAMESPACE/iris-trainer"
  local name
  for name in iris-predictor iris-trainer; do
    run gcloud iam service-accounts add-iam-policy-binding "$name@$SA_DOMAIN" --project="$PROJECT_ID" \
      --role=roles/iam.workloadIdentityUser --member="serviceAccount:$PROJECT_ID.svc.id.goog[$NAMESPACE/$name]" >/dev/null
  done
}

create_secret() {
  say "Secrets in $NAMESPACE: the trainer's Ed25519 signing key and split salt, the trusted public keys, the admin token (never printed)"
  run gcloud container clusters get-credentials "$CLUSTER" --project="$PROJECT_ID" --region="$REGION"
  ensure kubectl get namespace "$NAMESPACE" -- kubectl create namespace "$NAMESPACE"
  # The held-out split's salt: a secret, so nobody can tell which rows the quality gate scores on.
  $DRY_RUN || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORKDIR/split-salt")
  if ! $DRY_RUN && kubectl get secret "$SIGNING_SECRET" --namespace="$NAMESPACE" >/dev/null 2>&1; then
    echo "exists: secret $NAMESPACE/$SIGNING_SECRET (kept: a new signing key needs its public key trusted first)"
    if [[ -z "$(kubectl get secret "$SIGNING_SECRET" --namespace="$NAMESPACE" -o jsonpath='{.data.split-salt}')" ]]; then
      # Added once, never replaced: a new salt moves rows between the training and the held-out side.
      (umask 077 && printf '{"data":{"split-salt":"%s"}}' "$(base64 -w0 <"$WORKDIR/split-salt")" >"$WORKDIR/salt.json")
      run kubectl patch secret "$SIGNING_SECRET" --namespace="$NAMESPACE" --type=merge --patch-file="$WORKDIR/salt.json"
    fi
  else
    # The private key goes to the trainer only; predictors mount the public keys. Key id = ed25519: and 16 hex digits
    # of the SHA-256 of the raw public key (the last 32 bytes of its DER form), as core/signing.py derives it.
    (umask 077 && run openssl genpkey -algorithm ed25519 -out "$WORKDIR/private-key.pem")
    run openssl pkey -in "$WORKDIR/private-key.pem" -pubout -out "$WORKDIR/public-key.pem"
    local key_id="ed25519-KEY_ID"
    $DRY_RUN || key_id=ed25519-$(openssl pkey -in "$WORKDIR/private-key.pem" -pubout -outform DER | tail -c 32 |
      sha256sum | cut -c1-16)
    run kubectl create secret generic "$SIGNING_SECRET" --namespace="$NAMESPACE" \
      --from-file=private-key.pem="$WORKDIR/private-key.pem" --from-file=split-salt="$WORKDIR/split-salt"
    if ! $DRY_RUN && kubectl get secret "$PUBLIC_KEYS_SECRET" --namespace="$NAMESPACE" >/dev/null 2>&1; then
      # Trust the new key next to the older ones (a public key: fine on a command line); restart the predictors.
      run kubectl patch secret "$PUBLIC_KEYS_SECRET" --namespace="$NAMESPACE" --type=merge \
        -p "{\"data\":{\"$key_id.pem\":\"$(base64 -w0 <"$WORKDIR/public-key.pem")\"}}"
    else
      run kubectl create secret generic "$PUBLIC_KEYS_SECRET" --namespace="$NAMESPACE" \
        --from-file="$key_id.pem=$WORKDIR/public-key.pem"
    fi
  fi
  if ! $DRY_RUN && kubectl get secret "$SECRET" --namespace="$NAMESPACE" >/dev/null 2>&1; then
    echo "exists: secret $NAMESPACE/$SECRET (kept)"
    return
  fi
  $DRY_RUN || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORKDIR/admin-token")
  run kubectl create secret generic "$SECRET" --namespace="$NAMESPACE" --from-file=admin-token="$WORKDIR/admin-token"
}

# The first trusted evaluation set (scikit-learn's bundled iris), signed with the trainer's key under the set's own
# purpose label and written as the operator; kept when one exists (extend it with `python -m trainer.evalset publish`).
seed_evaluation_set() {
  say "Trusted evaluation set gs://$BUCKET/eval/: written by you, read-only for the trainer"
  if ! $DRY_RUN && gcloud storage ls "gs://$BUCKET/eval/evalset-*" >/dev/null 2>&1; then
    echo "exists: an evaluation set under gs://$BUCKET/eval/ (kept)"
    return
  fi
  local key="$WORKDIR/private-key.pem"
  if [[ ! -f $key ]]; then  # made on an earlier run: read back from its Secret, removed with WORKDIR at exit
    show kubectl get secret "$SIGNING_SECRET" --namespace="$NAMESPACE" -o "jsonpath={.data.private-key\.pem}"
    $DRY_RUN || (umask 077 && kubectl get secret "$SIGNING_SECRET" --namespace="$NAMESPACE" \
      -o "jsonpath={.data.private-key\.pem}" | base64 -d >"$key")
  fi
  run env PYTHONPATH="$ROOT" GOOGLE_CLOUD_PROJECT="$PROJECT_ID" GCS_BUCKET="$BUCKET" \
    MODEL_SIGNING_PRIVATE_KEY_FILE="$key" "$PYTHON" -m trainer.evalset seed
}

create_build_trigger() {
  say "Cloud Build: runs as iris-build; trigger on push to $BRANCH_PATTERN"
  local build="serviceAccount:iris-build@$SA_DOMAIN" role
  # roles/container.clusterViewer only fetches cluster credentials; what the build may do inside the cluster is
  # deploy/build-rbac.yaml (apply the overlays in $NAMESPACE, never read a Secret). roles/container.developer would
  # let it read every Secret, the signing key included.
  for role in roles/logging.logWriter roles/container.clusterViewer roles/cloudfunctions.developer; do
    project_role "$build" "$role"
  done
  sed -e "s/BUILD_ACCOUNT/iris-build@$SA_DOMAIN/" -e "s/namespace: iris\$/namespace: $NAMESPACE/" \
    -e "s/resourceNames: \[iris\]/resourceNames: [$NAMESPACE]/" "$(dirname "$0")/build-rbac.yaml" >"$WORKDIR/build-rbac.yaml"
  run kubectl apply -f "$WORKDIR/build-rbac.yaml"
  run gcloud artifacts repositories add-iam-policy-binding "$REPOSITORY" --project="$PROJECT_ID" \
    --location="$REGION" --member="$build" --role=roles/artifactregistry.writer >/dev/null
  # Deploying the function "as" iris-ingest requires actAs on that account only.
  run gcloud iam service-accounts add-iam-policy-binding "iris-ingest@$SA_DOMAIN" --project="$PROJECT_ID" \
    --member="$build" --role=roles/iam.serviceAccountUser >/dev/null
  if [[ -z $GITHUB_OWNER || -z $GITHUB_REPO ]]; then
    echo "skipped: the trigger needs --github-owner and --github-repo (connect the repository in Cloud Build first)"
    return
  fi
  ensure gcloud builds triggers describe iris-deploy --project="$PROJECT_ID" --region="$REGION" -- \
    gcloud builds triggers create github --name=iris-deploy --project="$PROJECT_ID" --region="$REGION" \
    --repo-owner="$GITHUB_OWNER" --repo-name="$GITHUB_REPO" --branch-pattern="$BRANCH_PATTERN" \
    --build-config=cloudbuild.yaml \
    --service-account="projects/$PROJECT_ID/serviceAccounts/iris-build@$SA_DOMAIN" \
    --substitutions="_REGION=$REGION,_REPOSITORY=$REPOSITORY,_CLUSTER=$CLUSTER,_OVERLAY=$OVERLAY,_BUCKET=$BUCKET"
}

enable_apis
create_bucket
create_events
create_service_accounts
grant_storage
grant_pubsub
grant_function
create_registry
create_cluster
create_gateway_tls
bind_workload_identity
create_secret
seed_evaluation_set
create_build_trigger
say "Done. Next: set GOOGLE_CLOUD_PROJECT=$PROJECT_ID and GCS_BUCKET=$BUCKET in k8s/overlays/$OVERLAY, then push."
