from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0015_measures')]

    initial = False

    operations = [
        ops.AddField(
            model_name='MessagingSettings',
            name='sms_on_earlier_slot_offers',
            field=fields.BooleanField(default=False),
        ),
    ]
