package awstest_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/emitd/emitd/adapters/awstest"
)

func TestStartFauxqs(t *testing.T) {
	endpoint := awstest.StartFauxqs(t)
	client := sqs.NewFromConfig(awstest.AWSConfig(endpoint))
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("awstest")})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	t.Logf("endpoint %s, queue %s", endpoint, aws.ToString(out.QueueUrl))
}
