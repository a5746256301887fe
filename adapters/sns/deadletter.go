package sns

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/emitd/emitd/domain"
)

// A subscription's dead-letter queue. SNS sends a message that it could not
// deliver to a subscription, once the delivery policy's retries are spent
// (or at once, for a client error such as a queue or function that is
// gone), to the subscription's dead-letter queue: the SQS queue of its
// redrive policy. The queue holds what the endpoint would have been sent:
// the notification JSON, or, with raw message delivery, the message itself
// (its message attributes as the SQS message's).

// SubscriptionDeadLetter is one message of a subscription's dead-letter
// queue.
type SubscriptionDeadLetter struct {
	// Raw is true when the body is the message itself (raw message
	// delivery); Notification is then empty.
	Raw bool
	// Notification is the notification JSON SNS sends without raw
	// delivery: Type "Notification", MessageId, TopicArn, Subject,
	// Message, Timestamp, SignatureVersion, Signature, SigningCertURL,
	// UnsubscribeURL, MessageAttributes (aws-lambda-go's definition, AWS's
	// own).
	Notification events.SNSEntity
	// Message is the message as it was published: the notification's
	// Message, or the whole body.
	Message string
}

// ParseSubscriptionDeadLetter reads a subscription's dead letter. A body
// that is a JSON object with "Type":"Notification" and a TopicArn is a
// notification; anything else is taken as a message delivered raw (what
// it holds is for the caller to judge).
func ParseSubscriptionDeadLetter(body string) (SubscriptionDeadLetter, error) {
	var probe struct {
		Type     string `json:"Type"`
		TopicArn string `json:"TopicArn"`
	}
	if json.Unmarshal([]byte(body), &probe) != nil || probe.Type != "Notification" || probe.TopicArn == "" {
		return SubscriptionDeadLetter{Raw: true, Message: body}, nil
	}
	var d SubscriptionDeadLetter
	if err := json.Unmarshal([]byte(body), &d.Notification); err != nil {
		return d, fmt.Errorf("the body is an SNS notification that cannot be read: %s", domain.Excerpt(err.Error()))
	}
	if d.Notification.Message == "" {
		return d, errors.New("the SNS notification has no Message")
	}
	d.Message = d.Notification.Message
	return d, nil
}

// TopicName is the name of a topic given by ARN (arn:aws:sns:REGION:
// ACCOUNT:NAME), or the topic itself when it is not an ARN.
func TopicName(topic string) string {
	if a, err := arn.Parse(topic); err == nil && a.Service == "sns" && !strings.Contains(a.Resource, ":") {
		return a.Resource
	}
	return topic
}
