package kubernetes_test

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The custom resources the manifests use, as subsets of their published Go
// types with the same JSON names. Importing those types would pull KEDA and
// the RabbitMQ Cluster Operator (controller-runtime and more) into this
// module; these copy only the fields the manifests may set, so that a
// strict decode still rejects a misspelt field. To use another field, add
// it here from the upstream file named on each type.

// scaledObject is keda.sh/v1alpha1 ScaledObject
// (kedacore/keda, apis/keda/v1alpha1/scaledobject_types.go).
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		ScaleTargetRef *struct {
			Name       string `json:"name"`
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval       *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod        *int32 `json:"cooldownPeriod,omitempty"`
		InitialCooldownPeriod int32  `json:"initialCooldownPeriod,omitempty"`
		IdleReplicaCount      *int32 `json:"idleReplicaCount,omitempty"`
		MinReplicaCount       *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount       *int32 `json:"maxReplicaCount,omitempty"`
		Advanced              *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
				Name     string                                         `json:"name,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []kedaTrigger `json:"triggers"`
		Fallback *struct {
			FailureThreshold int32 `json:"failureThreshold"`
			Replicas         int32 `json:"replicas"`
		} `json:"fallback,omitempty"`
	} `json:"spec"`
}

// kedaTrigger is one of a ScaledObject's triggers
// (kedacore/keda, apis/keda/v1alpha1/scaletriggers_types.go). Metadata is
// the scaler's own settings, checked in checkAutoscaling.
type kedaTrigger struct {
	Type              string            `json:"type"`
	Name              string            `json:"name,omitempty"`
	UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
	Metadata          map[string]string `json:"metadata"`
	AuthenticationRef *struct {
		Name string `json:"name"`
		Kind string `json:"kind,omitempty"`
	} `json:"authenticationRef,omitempty"`
	MetricType autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
}

// kedaRabbitMQMetadata are the rabbitmq scaler's trigger metadata keys
// (kedacore/keda, pkg/scalers/rabbitmq_scaler.go, rabbitMQMetadata): a key
// outside them is a typo KEDA would ignore or reject.
var kedaRabbitMQMetadata = map[string]bool{
	"queueName": true, "mode": true, "value": true, "activationValue": true,
	"host": true, "hostFromEnv": true, "protocol": true, "vhostName": true,
	"useRegex": true, "excludeUnacknowledged": true, "pageSize": true,
	"operation": true, "timeout": true, "unsafeSsl": true,
	"usernameFromEnv": true, "passwordFromEnv": true,
}

// triggerAuthentication is keda.sh/v1alpha1 TriggerAuthentication
// (kedacore/keda, apis/keda/v1alpha1/triggerauthentication_types.go),
// secretTargetRef and env only.
type triggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		SecretTargetRef []secretTargetRef `json:"secretTargetRef,omitempty"`
		Env             []struct {
			Parameter     string `json:"parameter"`
			Name          string `json:"name"`
			ContainerName string `json:"containerName,omitempty"`
		} `json:"env,omitempty"`
	} `json:"spec"`
}

// secretTargetRef passes the value of key in Secret name to the scaler as
// its parameter.
type secretTargetRef struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// rabbitmqCluster is rabbitmq.com/v1beta1 RabbitmqCluster
// (rabbitmq/cluster-operator, api/v1beta1/rabbitmqcluster_types.go).
type rabbitmqCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Replicas    *int32                       `json:"replicas"`
		Image       string                       `json:"image,omitempty"`
		Resources   *corev1.ResourceRequirements `json:"resources,omitempty"`
		Affinity    *corev1.Affinity             `json:"affinity,omitempty"`
		Tolerations []corev1.Toleration          `json:"tolerations,omitempty"`
		Persistence struct {
			StorageClassName *string            `json:"storageClassName,omitempty"`
			Storage          *resource.Quantity `json:"storage,omitempty"`
		} `json:"persistence,omitempty"`
		Rabbitmq struct {
			AdditionalPlugins []string `json:"additionalPlugins,omitempty"`
			// AdditionalConfig is appended to rabbitmq.conf; the CRD caps
			// it at 2000 characters.
			AdditionalConfig string `json:"additionalConfig,omitempty"`
			AdvancedConfig   string `json:"advancedConfig,omitempty"`
			EnvConfig        string `json:"envConfig,omitempty"`
		} `json:"rabbitmq,omitempty"`
		SkipPostDeploySteps bool `json:"skipPostDeploySteps,omitempty"`
	} `json:"spec,omitempty"`
}
